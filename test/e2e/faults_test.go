package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// randomImage is an image of pseudo-random layers, held in memory too so
// that every byte read from a mount can be checked.
type randomImage struct {
	img   mediaImage
	files []randomFile
}

type randomFile struct {
	name string // path in the tree, e.g. amd64/virtualization/disk.img
	data []byte
}

// pushRandomImage writes layers of the given sizes (by role) and pushes them
// as one seed-format amd64 image to repo.
func pushRandomImage(t *testing.T, host, repo string, sizes map[string]int) randomImage {
	t.Helper()
	names := map[string]string{"disk.img": "disk.img", "squashfs": "root.squashfs", "kernel": "kernel", "initramfs": "initramfs",
		"uki": "uki.efi", "iso": "image.iso", "cmdline": "cmdline"}
	dir := t.TempDir()
	var layers []layerFile
	var out randomImage
	seed := uint64(100)
	for _, role := range []string{"disk.img", "squashfs", "kernel", "initramfs", "uki", "iso", "cmdline"} {
		n, ok := sizes[role]
		if !ok {
			continue
		}
		seed++
		data := fixture.RandomBytes(seed, n)
		p := filepath.Join(dir, names[role])
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, seedLayer(role, p, names[role]))
		out.files = append(out.files, randomFile{name: "amd64/virtualization/" + names[role], data: data})
	}
	out.img = pushMediaImage(t, host, repo, layers)
	return out
}

// TestFaultRegistryStopped stops the registry in the middle of a
// sequential read of a large layer: reads fail with EIO within the read
// deadline (plus slack), the mount stays up and browsable, and once the
// registry is back the same reads succeed without a remount.
func TestFaultRegistryStopped(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	const size = 96 << 20
	img := pushRandomImage(t, reg.Host(), "os/stopped", map[string]int{"disk.img": size, "squashfs": 32 << 20, "kernel": 3<<20 + 1})
	data, other := img.files[0].data, img.files[1].data
	const readTimeout = 5 * time.Second
	dir := t.TempDir()
	m := startMount(t, img.img.ref(reg.Host()), dir, "--plain-http", "--read-timeout", readTimeout.String())
	path := filepath.Join(dir, "amd64/virtualization/disk.img")

	// Two readers of the same file: a buffered one, as dd or cat reads, and
	// an O_DIRECT one, whose every read is one FUSE request (no page cache,
	// no kernel read-ahead or retry), so it times the daemon's deadline.
	buffered, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer buffered.Close()
	direct, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	const block = 1 << 20
	readWith := func(f *os.File, data, buf []byte, off int64) (time.Duration, error) {
		start := time.Now()
		n, err := f.ReadAt(buf, off)
		took := time.Since(start)
		if n > 0 && !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Errorf("wrong bytes at %d", off)
			return took, errors.New("wrong bytes")
		}
		if err == nil && n != len(buf) {
			t.Errorf("short read at %d: %d", off, n)
			return took, errors.New("short read")
		}
		return took, err
	}
	buf := alignedBuffer(block)
	read := func(f *os.File, off int64) (time.Duration, error) { return readWith(f, data, buf, off) }

	// Stream the first 24 MiB, then stop the registry.
	off := int64(0)
	for ; off < 24<<20; off += block {
		if _, err := read(buffered, off); err != nil {
			t.Fatalf("read at %d before the stop: %v", off, err)
		}
	}
	reg.Stop()
	t.Logf("registry stopped after %d MiB", off>>20)

	// Keep reading sequentially: what read-ahead fetched before the stop is
	// served, then reads fail with EIO.
	const slack = 1500 * time.Millisecond
	var failed []int64
	var worst time.Duration
	succeeded := 0
	check := func(kind string, off int64, took time.Duration, err error) {
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("%s read at %d MiB: %v, want EIO", kind, off>>20, err)
		}
		worst = max(worst, took)
		t.Logf("%s read at %d MiB: EIO after %s", kind, off>>20, took.Round(time.Millisecond))
		if took > readTimeout+slack {
			t.Errorf("%s read at %d MiB waited %s before EIO, read timeout %s", kind, off>>20, took, readTimeout)
		}
	}
	for ; off < size && len(failed) < 3; off += block {
		took, err := read(buffered, off)
		if err == nil {
			succeeded++
			continue
		}
		check("sequential", off, took, err)
		failed = append(failed, off)
	}
	if len(failed) == 0 {
		t.Fatal("every read succeeded with the registry stopped")
	}
	// Fresh ranges of another layer, which nothing has tried yet: each
	// waits for its own deadline. O_DIRECT reads are one FUSE request each
	// (no page cache, no kernel read-ahead): they time the daemon's
	// deadline. A buffered read that fails makes the kernel read the page
	// again at once by itself; that second try must not wait a second
	// deadline.
	otherPath := filepath.Join(dir, "amd64/virtualization/root.squashfs")
	otherBuffered, err := os.Open(otherPath)
	if err != nil {
		t.Fatal(err)
	}
	defer otherBuffered.Close()
	otherDirect, err := os.OpenFile(otherPath, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer otherDirect.Close()
	fresh := []int64{0, 8 << 20, 16 << 20, 24 << 20}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, o := range fresh {
		f := otherDirect
		kind := "root.squashfs, O_DIRECT"
		if i == 3 {
			f, kind = otherBuffered, "root.squashfs, buffered"
		}
		wg.Go(func() {
			took, err := readWith(f, other, alignedBuffer(block), o)
			mu.Lock()
			defer mu.Unlock()
			check(kind, o, took, err)
		})
	}
	wg.Wait()
	t.Logf("with the registry stopped: %d reads served from what was already fetched, then EIO; worst wait before EIO: %s (read timeout %s)",
		succeeded, worst.Round(time.Millisecond), readTimeout)

	// The mount is still up and browsable.
	select {
	case err := <-m.done:
		m.done <- err
		t.Fatalf("osimagefs exited with the registry stopped: %v", err)
	default:
	}
	out, err := listTree(dir)
	if err != nil || !strings.Contains(out, "disk.img") || !strings.Contains(out, "kernel") {
		t.Fatalf("listing the tree with the registry stopped: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/manifest.json")); err != nil || len(b) == 0 {
		t.Fatalf("manifest.json with the registry stopped: %v", err)
	}

	// Back up: the same reads succeed, without a remount.
	reg.Restart(t)
	for _, o := range failed {
		for _, f := range []*os.File{direct, buffered} {
			if took, err := read(f, o); err != nil {
				t.Fatalf("read at %d MiB after the restart: %v (after %s)", o>>20, err, took)
			}
		}
	}
	for _, o := range fresh {
		for _, f := range []*os.File{otherDirect, otherBuffered} {
			if took, err := readWith(f, other, buf, o); err != nil {
				t.Fatalf("root.squashfs at %d MiB after the restart: %v (after %s)", o>>20, err, took)
			}
		}
	}
	start := time.Now()
	for ; off < size; off += block {
		if _, err := read(buffered, off); err != nil {
			t.Fatalf("read at %d after the restart: %v", off, err)
		}
	}
	t.Logf("after the restart: the failed reads succeed, and the rest of the layer streams in %s", time.Since(start).Round(time.Millisecond))
	if !isMounted(dir) {
		t.Fatal("not mounted any more")
	}
}

// alignedBuffer returns n bytes aligned for O_DIRECT.
func alignedBuffer(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % align); r != 0 {
		off = align - r
	}
	return b[off : off+n]
}

// TestFaultTokenAndRedirect mounts through a front that demands bearer
// tokens (each good for a few requests, and all expired on demand in the
// middle of the reads) and redirects blob GETs to another host with
// pre-signed URLs, some of which it refuses as expired. Every layer must
// read back byte for byte; the storage host must get the Range but never
// the registry's token.
func TestFaultTokenAndRedirect(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/auth", map[string]int{"disk.img": 24<<20 + 1, "kernel": 5<<20 + 3, "initramfs": 2<<20 + 7})
	front := faulty.New(t, reg.Host())
	front.RequireToken(4)
	storage := faulty.NewBlobHost(t, "127.0.0.2:0", reg.Host())
	front.Inject(0, storage.Redirect())
	dir := t.TempDir()
	startMount(t, img.img.ref(front.Host()), dir, "--plain-http", "--read-timeout", "10s", "--cache-dir", "none")
	issued0, _ := front.TokenStats()

	for i, f := range img.files {
		fh, err := os.Open(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		for off := 0; off < len(f.data); off += len(buf) {
			switch off {
			case 4 << 20:
				front.ExpireTokens()
			case 8 << 20:
				storage.RefuseNext(2)
			}
			n, err := fh.ReadAt(buf, int64(off))
			if n != min(len(buf), len(f.data)-off) || !bytes.Equal(buf[:n], f.data[off:off+n]) {
				t.Fatalf("%s at %d: %d bytes, %v, right: %v", f.name, off, n, err, bytes.Equal(buf[:n], f.data[off:off+n]))
			}
		}
		fh.Close()
		if i == 0 {
			front.ExpireTokens()
		}
	}

	issued, refused := front.TokenStats()
	var blob401, refusedURLs int
	for _, r := range front.BlobGets() {
		if r.Status == 401 {
			blob401++
		}
	}
	store := storage.Requests()
	for _, r := range store {
		if r.Authorization != "" {
			t.Errorf("the storage host got Authorization %q", r.Authorization)
		}
		isLayer := false
		for _, l := range img.img.layers {
			isLayer = isLayer || strings.HasSuffix(r.Path, "/"+l.Digest.String())
		}
		if isLayer && r.Range == "" { // the config is fetched whole
			t.Errorf("the storage host got a layer GET without Range: %s", r.Path)
		}
		if r.Status == 403 {
			refusedURLs++
		}
	}
	t.Logf("tokens issued during the reads: %d; requests refused with 401: %d (blob GETs: %d); storage GETs: %d, %d refused as expired",
		issued-issued0, refused, blob401, len(store), refusedURLs)
	if issued-issued0 < 3 || blob401 == 0 || refusedURLs != 2 || len(store) == 0 {
		t.Fatal("the test did not exercise token refresh and refused URLs")
	}
}
