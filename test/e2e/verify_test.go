package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// Verification by pieces, end to end: images with chunk tables (written by
// osimagefs push, or added by osimagefs index to an image another tool
// pushed), a proxy in front of a real registry that corrupts answers, and
// a damaged disk cache.

// verifyImage is an image pushed by osimagefs push (with chunk tables).
type verifyImage struct {
	ref    string // on the registry
	repo   string // repository and @digest
	disk   []byte
	diskDg digest.Digest
}

// pushVerifyImage pushes a disk.img of size bytes and a small kernel with
// osimagefs push, which writes chunk tables.
func pushVerifyImage(t *testing.T, host, repo string, size int) verifyImage {
	t.Helper()
	dir := t.TempDir()
	disk := fixture.RandomBytes(uint64(len(repo)), size)
	diskPath, kernelPath := filepath.Join(dir, "disk.img"), filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(diskPath, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernelPath, fixture.RandomBytes(77, 300<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, 2*time.Minute, "push", "--plain-http", "--quiet", host+"/"+repo+":1",
		"--arch", "amd64", "--variant", "virtualization", "--disk", diskPath, "--kernel", kernelPath)
	if code != 0 {
		t.Fatalf("push: status %d\n%s%s", code, out, errOut)
	}
	i := strings.Index(out, host+"/"+repo+"@sha256:")
	if i < 0 {
		t.Fatalf("push printed no pinned reference:\n%s", out)
	}
	pinned := strings.Fields(out[i:])[0]
	return verifyImage{ref: pinned, repo: strings.TrimPrefix(pinned, host+"/"), disk: disk, diskDg: digest.FromBytes(disk)}
}

// readAt reads n bytes at off of the file at p, bypassing nothing: the
// first read of those pages reaches the daemon.
func readAt(p string, off int64, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}

// waitLog waits up to 10 s for a line of the daemon's stderr holding every
// one of parts, and returns it.
func waitLog(t *testing.T, m *mountProc, parts ...string) string {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(m.stderr.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return line
			}
		}
	}
	t.Fatalf("the daemon's stderr has no line with %q:\n%s", parts, m.stderr.String())
	return ""
}

// TestVerifyPiecesThroughCorruptingProxy: a proxy flips one byte of one
// range answer. A 4 KiB read inside that piece gets the right bytes after
// a second fetch; where every answer is corrupt the read fails with EIO
// and the daemon names the blob, the piece and the host. No wrong byte is
// served, then or later from the disk cache; memory-only mounts check too.
func TestVerifyPiecesThroughCorruptingProxy(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushVerifyImage(t, reg.Host(), "os/verify", 12<<20+333)
	const (
		once   = 3<<20 + 70001 // corrupted in the first answer only
		always = 9<<20 + 5     // corrupted in every answer
	)
	for _, cacheMode := range []string{"disk", "none"} {
		t.Run("cache "+cacheMode, func(t *testing.T) {
			proxy := newFaultProxy(t, reg.Host(), img.diskDg, -1)
			proxy.flip(once, 1)
			proxy.flip(always, 0)
			cacheDir := "none"
			if cacheMode == "disk" {
				cacheDir = t.TempDir()
			}
			dir := t.TempDir()
			m := startMount(t, proxy.Host()+"/"+img.repo, dir, "--plain-http", "--cache-dir", cacheDir, "--read-ahead", "0")
			waitLog(t, m, "verification", "disk.img", "mode=pieces", "piece-size=65536", "manifest")
			file := filepath.Join(dir, "amd64/virtualization/disk.img")

			got, err := readAt(file, once&^4095, 4096)
			if err != nil {
				t.Fatalf("read of the piece corrupted once: %v", err)
			}
			if !bytes.Equal(got, img.disk[once&^4095:once&^4095+4096]) {
				t.Fatal("the read of the piece corrupted once returned wrong bytes")
			}
			waitLog(t, m, "failed their check; fetching them once more", img.diskDg.String(), "piece", proxy.Host())

			_, err = readAt(file, always&^4095, 4096)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("read of the piece corrupted every time: %v, want EIO", err)
			}
			line := waitLog(t, m, "failed their check twice", img.diskDg.String(), fmt.Sprintf("piece %d ", always/integrity.DefaultPieceSize), proxy.Host())
			t.Logf("daemon: %s", line)
			// One corrupt answer for the first piece; at least two for the
			// other (the kernel may read a page again by itself after EIO,
			// which tries twice more).
			proxy.mu.Lock()
			onceN, alwaysN := proxy.at[1].done, proxy.at[2].done // at[0] is the -1 of newFaultProxy
			proxy.mu.Unlock()
			if onceN != 1 || alwaysN < 2 || alwaysN%2 != 0 {
				t.Errorf("the proxy corrupted %d answers for the first piece and %d for the second, want 1 and 2 per read", onceN, alwaysN)
			}
			// The rest of the file reads right, corrupted pieces and all
			// once the proxy stops corrupting.
			proxy.mu.Lock()
			proxy.at = nil
			proxy.mu.Unlock()
			dropPageCache(t, file)
			all, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(all, img.disk) {
				t.Fatalf("the whole file once the proxy is fair: %v, right bytes %v", err, bytes.Equal(all, img.disk))
			}
			if err := m.terminate(t); err != nil {
				t.Fatal(err)
			}
			if cacheMode != "disk" {
				return
			}
			view := cacheView(t, cacheDir)
			if n := checkCachedChunks(t, view, img.diskDg, img.disk); n == 0 {
				t.Error("nothing of disk.img is in the disk cache")
			}
		})
	}
}

// TestVerifyIndexedImage: an image pushed by another tool, without tables,
// gets them from osimagefs index (as an OCI referrer); a mount then checks
// pieces: a corrupting proxy cannot get a wrong byte through.
func TestVerifyIndexedImage(t *testing.T) {
	requireMountable(t)
	tmp := t.TempDir()
	disk := fixture.RandomBytes(31, 6<<20+12345)
	p := filepath.Join(tmp, "disk.img")
	if err := os.WriteFile(p, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	dg := digest.FromBytes(disk)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/indexed", []layerFile{seedLayer("disk.img", p, "disk.img")})

	// Before index: pieces cannot be checked, and --verify pieces says so.
	_, errOut, code := runCLI(t, time.Minute, "mount", "--plain-http", "--verify", "pieces", img.ref(reg.Host()), t.TempDir())
	if code != 2 || !strings.Contains(errOut, dg.String()) || !strings.Contains(errOut, "osimagefs index") {
		t.Fatalf("mount --verify pieces of an image without tables: status %d, want 2 naming the layer and osimagefs index:\n%s", code, errOut)
	}

	out, errOut, code := runCLI(t, 2*time.Minute, "index", "--plain-http", img.ref(reg.Host()))
	if code != 0 {
		t.Fatalf("index: status %d\n%s%s", code, out, errOut)
	}
	t.Logf("index: %s", strings.TrimSpace(out))

	const bad = 4<<20 + 999
	proxy := newFaultProxy(t, reg.Host(), dg, bad)
	dir := t.TempDir()
	m := startMount(t, img.ref(proxy.Host()), dir, "--plain-http", "--verify", "pieces", "--read-ahead", "0")
	waitLog(t, m, "verification", "disk.img", "mode=pieces", "referrer")
	file := filepath.Join(dir, "amd64/virtualization/disk.img")
	if _, err := readAt(file, bad&^4095, 4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a piece corrupted every time: %v, want EIO", err)
	}
	got, err := readAt(file, 1<<20, 64<<10)
	if err != nil || !bytes.Equal(got, disk[1<<20:1<<20+64<<10]) {
		t.Fatalf("read of a good piece: %v", err)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyDamagedDiskCache: a chunk damaged in the disk cache after it
// was written is found when read, fetched again, and the reader gets the
// right bytes.
func TestVerifyDamagedDiskCache(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushVerifyImage(t, reg.Host(), "os/damaged", 5<<20+17)
	cacheDir := t.TempDir()
	dir := t.TempDir()
	m := startMount(t, img.ref, dir, "--plain-http", "--cache-dir", cacheDir)
	file := filepath.Join(dir, "amd64/virtualization/disk.img")
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, img.disk) {
		t.Fatalf("first read: %v", err)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
	// Damage one byte of chunk 2 where the cache keeps it.
	const at = 2<<20 + 4321
	data := filepath.Join(cacheDir, "v2", fmt.Sprint(chunkSize), "sha256", img.diskDg.Encoded(), "data")
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("the cache's data file of disk.img: %v", err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	counter := registrytest.NewCountingProxy(t, reg.Host())
	m = startMount(t, counter.Host()+"/"+img.repo, dir, "--plain-http", "--cache-dir", cacheDir)
	got, err := readAt(file, at&^4095, 4096)
	if err != nil || !bytes.Equal(got, img.disk[at&^4095:at&^4095+4096]) {
		t.Fatalf("read of the damaged chunk: %v, right bytes %v", err, bytes.Equal(got, img.disk[at&^4095:at&^4095+4096]))
	}
	waitLog(t, m, "chunk in the disk cache failed its check", img.diskDg.String())
	if n := counter.BytesFor(img.diskDg.String()); n != chunkSize {
		t.Errorf("%d bytes of disk.img fetched, want one chunk (%d): the damaged chunk again", n, chunkSize)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
	want := (int64(len(img.disk)) + chunkSize - 1) / chunkSize
	if n := checkCachedChunks(t, cacheView(t, cacheDir), img.diskDg, img.disk); n != want {
		t.Errorf("%d chunks of disk.img in the cache, want all %d, right", n, want)
	}
}

// TestVerifyTableRefused: a manifest listing a chunk table that disagrees
// with its layer (another size) is refused with an error naming the table
// and what disagrees; the mount never comes up on it.
func TestVerifyTableRefused(t *testing.T) {
	tmp := t.TempDir()
	disk := fixture.RandomBytes(41, 3<<20+100)
	p := filepath.Join(tmp, "disk.img")
	if err := os.WriteFile(p, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	b := integrity.NewBuilder(digest.SHA256, integrity.DefaultPieceSize)
	b.Write(disk)
	table := b.Table()
	table.Size++ // the same pieces, one byte more than the layer
	tp := filepath.Join(tmp, "table")
	if err := os.WriteFile(tp, table.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/liar", []layerFile{
		seedLayer("disk.img", p, "disk.img"),
		{image.MediaTypeChunkTable, tp, "table"},
	})
	for _, mode := range []string{"auto", "pieces"} {
		_, errOut, code := runCLI(t, time.Minute, "mount", "--plain-http", "--verify", mode, img.ref(reg.Host()), t.TempDir())
		if code == 0 || !strings.Contains(errOut, "chunk table") || !strings.Contains(errOut, "refused") || !strings.Contains(errOut, fmt.Sprint(len(disk))) {
			t.Fatalf("mount --verify %s with a table one byte too long: status %d, want a failure naming the table and the sizes:\n%s", mode, code, errOut)
		}
		t.Logf("--verify %s: %s", mode, strings.TrimSpace(errOut))
	}
	// With --verify blob the table is not read, and the image mounts.
	requireMountable(t)
	dir := t.TempDir()
	m := startMount(t, img.ref(reg.Host()), dir, "--plain-http", "--verify", "blob")
	if got, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/disk.img")); err != nil || !bytes.Equal(got, disk) {
		t.Fatalf("read with --verify blob: %v", err)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// mountRequests mounts ref (a host served by c) with extra flags, and
// returns how many requests the mount made before serving.
func mountRequests(t *testing.T, c *registrytest.Counter, ref string, extra ...string) int64 {
	t.Helper()
	c.Reset()
	m := startMount(t, ref, t.TempDir(), append([]string{"--plain-http"}, extra...)...)
	n := c.Requests()
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestVerifyLookupRequests: the requests a mount adds to find chunk
// tables: one per table listed in the manifest; for a referrer on a
// registry without the referrers API (Distribution), the referrers GET,
// the fallback tag, the referrer manifest and one per table.
func TestVerifyLookupRequests(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	c := registrytest.NewCountingProxy(t, reg.Host())
	pushed := pushVerifyImage(t, reg.Host(), "os/lookup", 3<<20)
	base := mountRequests(t, c, c.Host()+"/"+pushed.repo, "--verify", "blob")
	withTables := mountRequests(t, c, c.Host()+"/"+pushed.repo, "--verify", "auto")
	t.Logf("tables in the manifest: %d requests to mount with --verify blob, %d with auto", base, withTables)
	if withTables-base != 2 {
		t.Errorf("finding the 2 tables a manifest lists took %d more requests, want 2", withTables-base)
	}

	tmp := t.TempDir()
	p := filepath.Join(tmp, "disk.img")
	if err := os.WriteFile(p, fixture.RandomBytes(51, 2<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	img := pushMediaImage(t, reg.Host(), "os/lookup-ref", []layerFile{seedLayer("disk.img", p, "disk.img")})
	base = mountRequests(t, c, img.ref(c.Host()), "--verify", "blob")
	none := mountRequests(t, c, img.ref(c.Host()), "--verify", "auto")
	if _, errOut, code := runCLI(t, time.Minute, "index", "--plain-http", "--quiet", img.ref(reg.Host())); code != 0 {
		t.Fatalf("index: status %d\n%s", code, errOut)
	}
	referred := mountRequests(t, c, img.ref(c.Host()), "--verify", "auto")
	t.Logf("no table: %d more requests; one table as a referrer: %d more", none-base, referred-base)
	if none-base != 2 || referred-base != 4 {
		t.Errorf("requests added: %d without tables, %d with one referrer; want 2 (referrers GET, fallback tag) and 4 (and the referrer manifest, the table)", none-base, referred-base)
	}
}
