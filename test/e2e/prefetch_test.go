package e2e

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestPrefetch checks --prefetch: "small" fetches what a boot needs
// (kernel, initramfs, cmdline) right after mounting and nothing else, not
// the UKI; "small+uki" adds the UKI; "all" then fetches every layer;
// "none" fetches nothing.
func TestPrefetch(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	img := pushSeedIndex(t, reg.Host(), s)
	sum := func(name string) (digest.Digest, int64) {
		p := img.expected["amd64/virtualization/"+name].path
		d, err := fixture.Sha256File(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return digest.NewDigestFromEncoded(digest.SHA256, d), st.Size()
	}
	small := []string{"kernel", "initramfs", "cmdline"}
	large := []string{"uki.efi", "disk.img", "root.squashfs", "image.iso"}
	// wanted: the files a mode fetches whole.
	wanted := func(mode, n string) bool {
		switch mode {
		case "all":
			return true
		case "small":
			return slices.Contains(small, n)
		case "small+uki":
			return slices.Contains(small, n) || n == "uki.efi"
		}
		return false
	}

	for _, mode := range []string{"none", "small", "small+uki", "all"} {
		t.Run(mode, func(t *testing.T) {
			counter := registrytest.NewCountingProxy(t, reg.Host())
			m := startMount(t, counter.Host()+"/"+img.ref, t.TempDir(), "--plain-http", "--prefetch", mode, "--platform", "linux/amd64")
			deadline := time.Now().Add(60 * time.Second)
			for {
				got := settled(counter)
				want := int64(0)
				for _, n := range append(append([]string{}, small...), large...) {
					if wanted(mode, n) {
						_, size := sum(n)
						want += size
					}
				}
				if got >= want || time.Now().After(deadline) {
					break
				}
			}
			for _, n := range append(append([]string{}, small...), large...) {
				d, size := sum(n)
				got := counter.BytesFor(d.String())
				wantAll := wanted(mode, n)
				switch {
				case wantAll && got < size:
					t.Errorf("--prefetch %s: %s fetched %d of %d bytes, want all", mode, n, got, size)
				case !wantAll && got != 0:
					t.Errorf("--prefetch %s: %s fetched %d bytes, want none", mode, n, got)
				}
			}
			t.Logf("--prefetch %s: %d blob bytes fetched in the background", mode, counter.BlobBytes())
			if err := m.terminate(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}
