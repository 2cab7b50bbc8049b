package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestPrefetch checks --prefetch: "small" fetches the boot files (kernel,
// initramfs, cmdline, UKI) right after mounting and nothing else; "all"
// then fetches every layer; "none" fetches nothing.
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
	small := []string{"kernel", "initramfs", "cmdline", "uki.efi"}
	large := []string{"disk.img", "root.squashfs", "image.iso"}

	for _, mode := range []string{"none", "small", "all"} {
		t.Run(mode, func(t *testing.T) {
			counter := registrytest.NewCountingProxy(t, reg.Host())
			m := startMount(t, counter.Host()+"/"+img.ref, t.TempDir(), "--plain-http", "--prefetch", mode, "--platform", "linux/amd64")
			deadline := time.Now().Add(60 * time.Second)
			for {
				got := settled(counter)
				want := int64(0)
				for _, n := range small {
					if mode != "none" {
						_, size := sum(n)
						want += size
					}
				}
				for _, n := range large {
					if mode == "all" {
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
				wantAll := mode == "all" || (mode == "small" && contains(small, n))
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
