package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// metricValue is the value of the series named exactly series (name and
// labels as /metrics prints them) in the text of a scrape; -1 if absent.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// TestPassthrough: a layer that osimagefs fetch brought complete and
// verified into the cache is read by the kernel straight from the cache
// file: the bytes are the layer's, the mount counts a passthrough open and
// no READ request reaches the daemon for it. With --passthrough=false the
// same read goes through READ requests.
func TestPassthrough(t *testing.T) {
	requireMountable(t)
	const size = 24<<20 + 4321
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/pass", map[string]int{"disk.img": size, "kernel": 1<<20 + 7})
	ref := img.img.ref(reg.Host())
	cacheDir := t.TempDir()
	if out, errOut, code := runCLI(t, 2*time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref); code != 0 {
		t.Fatalf("fetch exited %d:\n%s\n%s", code, out, errOut)
	}
	want := img.files[0].data
	if img.files[0].name != "amd64/virtualization/disk.img" {
		t.Fatalf("first file is %s", img.files[0].name)
	}
	const reads, opens = `osimagefs_read_requests_total{role="disk"}`, `osimagefs_passthrough_opens_total{role="disk"}`
	for _, pass := range []bool{true, false} {
		t.Run("passthrough="+strconv.FormatBool(pass), func(t *testing.T) {
			addr, dir := freeAddr(t), t.TempDir()
			m := startMount(t, ref, dir, "--plain-http", "--cache-dir", cacheDir, "--metrics-addr", addr, "--passthrough="+strconv.FormatBool(pass))
			before := scrape(t, addr)
			got, err := os.ReadFile(filepath.Join(dir, img.files[0].name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes of disk.img, not what was pushed", len(got))
			}
			after := scrape(t, addr)
			r0, r1 := metricValue(t, before, reads), metricValue(t, after, reads)
			o1 := metricValue(t, after, opens)
			t.Logf("READ requests for disk.img: %v before, %v after; passthrough opens %v", r0, r1, o1)
			if r0 < 0 || o1 < 0 {
				t.Fatalf("/metrics lacks %s or %s:\n%s", reads, opens, grepLines(after, "osimagefs_"))
			}
			if pass {
				if o1 < 1 {
					t.Errorf("no passthrough open counted for disk.img")
				}
				if r1 != r0 {
					t.Errorf("%v READ requests reached the daemon for a file passed through", r1-r0)
				}
				if strings.Contains(m.stderr.String(), "passthrough unavailable") {
					t.Errorf("the mount says passthrough is unavailable:\n%s", m.stderr.String())
				}
			} else {
				if o1 != 0 {
					t.Errorf("%v passthrough opens with --passthrough=false", o1)
				}
				if r1-r0 < size/(1<<20) {
					t.Errorf("%v READ requests for %d bytes read through the daemon, want at least one per MiB", r1-r0, size)
				}
			}
			if err := m.terminate(t); err != nil {
				t.Fatalf("mount: %v", err)
			}
		})
	}
}

// TestPassthroughPin: while a passed-through file is open, its cache file
// stays pinned against eviction by any process, even a cache opened with
// a limit of one chunk, and even after the daemon was killed. The pin goes
// when the kernel lets go of the file: at its close with the daemon alive,
// once the dead mount is gone too with the daemon killed.
func TestPassthroughPin(t *testing.T) {
	requireMountable(t)
	const size = 8<<20 + 99
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/pin", map[string]int{"disk.img": size})
	ref := img.img.ref(reg.Host())
	dg := img.img.layers["disk.img"].Digest
	cacheDir := t.TempDir()
	if out, errOut, code := runCLI(t, 2*time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref); code != 0 {
		t.Fatalf("fetch exited %d:\n%s\n%s", code, out, errOut)
	}
	dir := t.TempDir()
	m := startMount(t, ref, dir, "--plain-http", "--cache-dir", cacheDir)
	file := filepath.Join(dir, img.files[0].name)
	awaitUnpinned := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); pinned(t, cacheDir, dg); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("still pinned 10 s after %s", what)
			}
		}
	}

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if !pinned(t, cacheDir, dg) {
		t.Fatal("a file open through passthrough is not pinned in the cache")
	}
	f.Close()
	awaitUnpinned("the file was closed")

	f, err = os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	m.done <- <-m.done
	// Another process with a limit of one chunk evicts what it can.
	evictAll := func() {
		t.Helper()
		small, err := cache.OpenDisk(cacheDir, chunkSize, chunkSize, nil)
		if err != nil {
			t.Fatal(err)
		}
		small.Close()
	}
	evictAll()
	got := make([]byte, size)
	if n, err := f.ReadAt(got, 0); n != size || !bytes.Equal(got, img.files[0].data) {
		t.Fatalf("after the daemon died and another process evicted, the open file reads %d bytes (%v), not the layer", n, err)
	}
	if n, _ := cachedOf(t, cacheDir, dg, size); n != size {
		t.Fatalf("the pinned blob has %d of %d bytes in the cache", n, size)
	}
	f.Close()
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	awaitUnpinned("the file was closed and the dead mount detached")
	evictAll()
	if n, _ := cachedOf(t, cacheDir, dg, size); n > chunkSize {
		t.Fatalf("after the pin went, a cache of one chunk still holds %d bytes of the blob", n)
	}
}

// pinned reports whether blob dg is pinned in the cache at dir.
func pinned(t *testing.T, dir string, dg digest.Digest) bool {
	t.Helper()
	d, err := cache.OpenDisk(dir, chunkSize, 10<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Pinned(dg)
}
