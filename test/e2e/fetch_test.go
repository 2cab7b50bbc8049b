package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// osimagefs fetch end to end: the built binary fills a cache directory
// from a real registry (through the counting proxy), and a mount on that
// directory then reads every layer without fetching a byte of it.

// cachedOf counts the bytes of blob dg (of size bytes) in the disk cache
// at dir, through the cache's own API (the cache is not open elsewhere).
func cachedOf(t *testing.T, dir string, dg digest.Digest, size int64) (bytes int64, verified bool) {
	t.Helper()
	d, err := cache.OpenDisk(dir, chunkSize, 10<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := int64(0); i*chunkSize < size; i++ {
		if d.Has(cache.Key{Digest: dg, Index: i}) {
			bytes += min(chunkSize, size-i*chunkSize)
		}
	}
	return bytes, d.Verified(dg)
}

// TestFetchThenMountFetchesNothing: fetch brings every layer into the
// cache, each byte once; a second fetch fetches nothing; a mount on the
// same cache then reads every layer fully, right, with 0 blob bytes from
// the registry.
func TestFetchThenMountFetchesNothing(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/warm", map[string]int{"disk.img": 24<<20 + 4321, "kernel": 3<<20 + 1, "initramfs": 5 << 20})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	ref := img.img.ref(counter.Host())
	cacheDir := t.TempDir()

	out, errOut, code := runCLI(t, 2*time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref)
	t.Logf("fetch: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	if code != 0 {
		t.Fatalf("fetch exited %d", code)
	}
	if !strings.Contains(out, "total: 3 of 3 layers complete") {
		t.Fatalf("the summary does not say the 3 layers are complete:\n%s", out)
	}
	// Without a terminal: a line per layer as it completes.
	if n := strings.Count(errOut, "complete amd64/virtualization/"); n != 3 {
		t.Fatalf("stderr has %d lines of completed layers, want 3:\n%s", n, errOut)
	}
	for _, f := range img.files {
		dg := img.img.layers[filepath.Base(f.name)].Digest
		if got := counter.BytesFor(dg.String()); got != int64(len(f.data)) {
			t.Errorf("fetch got %d bytes of %s from the registry, want its %d bytes, once", got, f.name, len(f.data))
		}
		if n, ok := cachedOf(t, cacheDir, dg, int64(len(f.data))); n != int64(len(f.data)) || !ok {
			t.Errorf("after fetch the cache holds %d of the %d bytes of %s, verified %v", n, len(f.data), f.name, ok)
		}
	}

	counter.Reset()
	out, _, code = runCLI(t, 2*time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref)
	if code != 0 {
		t.Fatalf("a second fetch exited %d:\n%s", code, out)
	}
	for _, f := range img.files {
		if n := counter.BytesFor(img.img.layers[filepath.Base(f.name)].Digest.String()); n != 0 {
			t.Errorf("a second fetch got %d bytes of %s, want 0", n, f.name)
		}
	}

	dir := t.TempDir()
	m := startMount(t, ref, dir, "--plain-http", "--cache-dir", cacheDir)
	atMount := counter.BlobBytes() // the config
	counter.Reset()
	for _, f := range img.files {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("%s read from the mount is not what was pushed", f.name)
		}
	}
	t.Logf("mount on the fetched cache: %d blob bytes at mount time (config), then %d blob bytes in %d requests to read %d layers",
		atMount, counter.BlobBytes(), counter.BlobRequests(), len(img.files))
	for _, f := range img.files {
		if n := counter.BytesFor(img.img.layers[filepath.Base(f.name)].Digest.String()); n != 0 {
			t.Errorf("the mount fetched %d bytes of %s", n, f.name)
		}
	}
	if n := counter.BlobBytes(); n != 0 {
		t.Fatalf("the mount fetched %d blob bytes reading layers that fetch had cached, want 0", n)
	}
	if err := m.terminate(t); err != nil {
		t.Fatalf("mount: %v", err)
	}
}

// TestFetchInterruptedKeepsWhatItGot: SIGINT in the middle of a fetch of a
// slow layer exits 130 and keeps the chunks fetched; a second fetch then
// fetches exactly the rest.
func TestFetchInterruptedKeepsWhatItGot(t *testing.T) {
	reg := registrytest.Start(t)
	const size = 48<<20 + 777
	img := pushRandomImage(t, reg.Host(), "os/slow", map[string]int{"disk.img": size})
	dg := img.img.layers["disk.img"].Digest
	// fetch -> counter -> toxiproxy -> registry: the counter counts what
	// the fetch got, at the pace the bandwidth limit lets through.
	toxi := registrytest.NewToxiProxy(t, reg.Host())
	toxi.AddBandwidth(1024) // KB/s per connection: two connections take about 24 s for it
	slow := registrytest.NewCountingProxy(t, toxi.Host())
	cacheDir := t.TempDir()

	cmd := exec.Command(binary, "fetch", "--plain-http", "--parallel", "2", "--cache-dir", cacheDir, img.img.ref(slow.Host()))
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for slow.BytesFor(dg.String()) < 4<<20 {
		select {
		case err := <-done:
			t.Fatalf("fetch ended (%v) before it was interrupted:\n%s\n%s", err, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("fetch got %d bytes in 60 s", slow.BytesFor(dg.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("fetch did not exit within 30 s of SIGINT:\n%s", stderr.String())
	}
	t.Logf("interrupted fetch: exit %d\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState.ExitCode(), stdout.String(), stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("fetch interrupted by SIGINT exited %d, want 130", code)
	}
	if !strings.Contains(stdout.String(), "interrupted") {
		t.Fatalf("the summary does not say the layer was interrupted:\n%s", stdout.String())
	}
	kept, verified := cachedOf(t, cacheDir, dg, size)
	t.Logf("kept %s of %s in the cache", mib(kept), mib(size))
	if kept == 0 || kept >= size || verified {
		t.Fatalf("after the interrupt the cache holds %d of %d bytes (verified %v): want some, not all", kept, size, verified)
	}

	// The second fetch at full speed.
	counter := registrytest.NewCountingProxy(t, reg.Host())
	out, errOut, code := runCLI(t, 2*time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, img.img.ref(counter.Host()))
	got := counter.BytesFor(dg.String())
	t.Logf("second fetch: exit %d, fetched %s\nstdout:\n%s\nstderr:\n%s", code, mib(got), out, errOut)
	if code != 0 {
		t.Fatalf("second fetch exited %d", code)
	}
	if got != size-kept {
		t.Fatalf("the second fetch got %d bytes of the layer, want the %d missing (of %d)", got, size-kept, size)
	}
	if n, ok := cachedOf(t, cacheDir, dg, size); n != size || !ok {
		t.Fatalf("after the second fetch the cache holds %d of %d bytes, verified %v", n, size, ok)
	}
}

// TestFetchUsageErrors: a PATH not in the image fails with status 2,
// naming it and listing the layer files; so does --cache-dir none.
func TestFetchUsageErrors(t *testing.T) {
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/paths", map[string]int{"disk.img": 1 << 20, "kernel": 4096})
	ref := img.img.ref(reg.Host())
	cacheDir := t.TempDir()

	_, errOut, code := runCLI(t, time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref, "amd64/virtualization/kernel", "amd64/virtualization/nope")
	checkFailure(t, errOut, code, 2, `"amd64/virtualization/nope" is not in the image`)
	for _, want := range []string{"amd64/virtualization/disk.img", "amd64/virtualization/kernel"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the error does not list %s: %s", want, errOut)
		}
	}
	if n, _ := cachedOf(t, cacheDir, img.img.layers["kernel"].Digest, 4096); n != 0 {
		t.Errorf("a fetch refused for a bad PATH cached %d bytes of the kernel", n)
	}

	_, errOut, code = runCLI(t, time.Minute, "fetch", "--plain-http", "--cache-dir", "none", ref)
	checkFailure(t, errOut, code, 2, "--cache-dir none")

	// A directory selects the layers under it.
	out, _, code := runCLI(t, time.Minute, "fetch", "--plain-http", "--cache-dir", cacheDir, ref, "amd64")
	if code != 0 || !strings.Contains(out, "total: 2 of 2 layers complete") {
		t.Fatalf("fetch of a directory exited %d:\n%s", code, out)
	}
}
