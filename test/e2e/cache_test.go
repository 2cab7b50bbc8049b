package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The disk cache end to end: the built binary, a real registry, the counting
// proxy, and the cache directory as it is on disk. Layout (cache/disk.go):
// <dir>/lock, <dir>/tmp/, <dir>/v1/<chunk size>/<alg>/<hex>/<index> and
// .../verified.

// layerDigest is the digest of a layer's source file.
func layerDigest(t *testing.T, e expectedFile) digest.Digest {
	t.Helper()
	return digest.Digest("sha256:" + expectedSum(t, e))
}

// blobCacheDir is where the disk cache keeps the chunks of blob dg.
func blobCacheDir(cacheDir string, chunk int64, dg digest.Digest) string {
	return filepath.Join(cacheDir, "v1", strconv.FormatInt(chunk, 10), string(dg.Algorithm()), dg.Encoded())
}

// cacheDirSize sums the sizes of the regular files under dir (tmp/
// included, the lock file too) and counts them.
func cacheDirSize(dir string) (int64, int) {
	var total int64
	var files int
	_ = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return nil // a directory removed under our feet, or one to enter
		}
		if info, err := de.Info(); err == nil {
			total += info.Size()
			files++
		}
		return nil
	})
	return total, files
}

// chunkFilesIn returns the chunk files of blob dg in the cache, by index.
func chunkFilesIn(t *testing.T, cacheDir string, chunk int64, dg digest.Digest) map[int64]string {
	t.Helper()
	dir := blobCacheDir(cacheDir, chunk, dg)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for _, e := range ents {
		if e.Name() == "verified" {
			continue
		}
		i, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil {
			t.Fatalf("unexpected file %s in %s", e.Name(), dir)
		}
		out[i] = filepath.Join(dir, e.Name())
	}
	return out
}

// readAndCheck reads the mounted file fully and compares it with its
// expected content.
func readAndCheck(t *testing.T, mounted string, e expectedFile) {
	t.Helper()
	if got, want := sumFile(t, mounted), expectedSum(t, e); got != want {
		t.Errorf("%s: sha256 %s, want %s", mounted, got, want)
	}
}

// TestCachePersistsAcrossMounts: everything read through one mount is
// served from the cache directory by the next mount: the registry sees no
// blob bytes the second time. The blobs that became complete were
// verified against their digests.
func TestCachePersistsAcrossMounts(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	img := pushSeedIndex(t, reg.Host(), s)
	counter := registrytest.NewCountingProxy(t, reg.Host())
	cacheDir := t.TempDir()
	ref := counter.Host() + "/" + img.ref

	layers := map[digest.Digest]int64{} // layer -> size
	for _, e := range img.expected {
		if e.path != "" {
			layers[layerDigest(t, e)] = expectedSize(t, e)
		}
	}
	var total int64
	for _, n := range layers {
		total += n
	}

	dir := t.TempDir()
	m := startMount(t, ref, dir, "--plain-http", "--cache-dir", cacheDir)
	for _, p := range sortedKeys(img.expected) {
		readAndCheck(t, filepath.Join(dir, p), img.expected[p])
	}
	first := counter.BlobBytes()
	t.Logf("first mount: read %d files (%d distinct layers, %s), fetched %s of blobs in %d requests",
		len(img.expected), len(layers), mib(total), mib(first), counter.BlobRequests())
	if first < total {
		t.Fatalf("the first mount fetched %d blob bytes, less than the %d bytes of its layers: the cache was not empty", first, total)
	}
	// Every layer is complete in the cache, so every one gets verified.
	deadline := time.Now().Add(60 * time.Second)
	for dg := range layers {
		for {
			if _, err := os.Stat(filepath.Join(blobCacheDir(cacheDir, chunkSize, dg), "verified")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("layer %s (%d bytes) was read fully but is not marked verified in the cache", dg, layers[dg])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := m.terminate(t); err != nil {
		t.Fatalf("first mount: %v\n%s", err, m.stderr.String())
	}
	used, files := cacheDirSize(cacheDir)
	t.Logf("cache directory after the first mount: %s in %d files", mib(used), files)

	counter.Reset()
	dir2 := t.TempDir()
	m2 := startMount(t, ref, dir2, "--plain-http", "--cache-dir", cacheDir)
	atMount := counter.BlobBytes() // the configs, which mount fetches
	counter.Reset()
	for _, p := range sortedKeys(img.expected) {
		readAndCheck(t, filepath.Join(dir2, p), img.expected[p])
	}
	got := counter.BlobBytes()
	t.Logf("second mount: %d config bytes at mount time, then %d blob bytes in %d requests to read everything again", atMount, got, counter.BlobRequests())
	for dg := range layers {
		if n := counter.BytesFor(dg.String()); n != 0 {
			t.Errorf("second mount fetched %d bytes of layer %s", n, dg)
		}
	}
	if got != 0 {
		t.Fatalf("second mount with the same --cache-dir fetched %d blob bytes reading every file, want 0", got)
	}
	if err := m2.terminate(t); err != nil {
		t.Fatalf("second mount: %v\n%s", err, m2.stderr.String())
	}
}

// TestCacheStaysWithinSize reads a file eight times the size of the disk
// cache while sampling the cache directory: it never holds more than its
// size plus the chunks being written, and the bytes read are right.
func TestCacheStaysWithinSize(t *testing.T) {
	requireMountable(t)
	const (
		limit    = 8 << 20
		fileSize = 72<<20 + 4321
		parallel = 8 // the default --parallel
	)
	src := filepath.Join(t.TempDir(), "big.img")
	data := fixture.RandomBytes(11, fileSize)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/bound", []layerFile{seedLayer("disk.img", src, "disk.img")})
	cacheDir := t.TempDir()
	dir := t.TempDir()
	startMount(t, img.ref(reg.Host()), dir, "--plain-http", "--cache-dir", cacheDir, "--cache-size", "8MiB", "--chunk-size", "1MiB")

	var maxSeen, maxFiles, samples atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, files := cacheDirSize(cacheDir)
			samples.Add(1)
			if n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			if int64(files) > maxFiles.Load() {
				maxFiles.Store(int64(files))
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	got, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/disk.img"))
	took := time.Since(start)
	// Let the writes in flight land, then take the last samples.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file read through an 8 MiB disk cache is not the source")
	}
	bound := int64(limit + parallel*chunkSize)
	final, _ := cacheDirSize(cacheDir)
	t.Logf("read %s in %s; %d samples of the cache directory: at most %s (%.2f chunks over the limit) in at most %d files; %s at the end; limit %s, bound with %d chunks in flight %s",
		mib(fileSize), took.Round(time.Millisecond), samples.Load(), mib(maxSeen.Load()), float64(maxSeen.Load()-limit)/chunkSize,
		maxFiles.Load(), mib(final), mib(limit), parallel, mib(bound))
	if maxSeen.Load() > bound {
		t.Fatalf("the cache directory held %d bytes, more than %d (the limit plus %d chunks in flight)", maxSeen.Load(), bound, parallel)
	}
	if final > limit+4096 { // + the lock file, which holds a pid
		t.Fatalf("after the read the cache directory holds %d bytes, over the %d-byte limit", final, limit)
	}
	if maxSeen.Load() < limit-chunkSize {
		t.Fatalf("the cache directory never held more than %d bytes: was the disk cache used at all?", maxSeen.Load())
	}
}

// TestCacheDirShared: one daemon per cache directory at a time (a second
// one is refused, clearly, before it mounts anything), and mounts of
// different images that share blobs share their chunks.
func TestCacheDirShared(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	seed := pushSeedIndex(t, reg.Host(), s)
	iron := pushIronCore(t, reg.Host(), s)
	counter := registrytest.NewCountingProxy(t, reg.Host())

	t.Run("a second daemon on the same directory is refused", func(t *testing.T) {
		cacheDir := t.TempDir()
		dir := t.TempDir()
		m := startMount(t, counter.Host()+"/"+seed.ref, dir, "--plain-http", "--cache-dir", cacheDir)
		dir2 := t.TempDir()
		_, stderr, code := runCLI(t, 60*time.Second, "mount", "--plain-http", "--cache-dir", cacheDir, counter.Host()+"/"+iron.ref, dir2)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		t.Logf("second daemon: exit status %d: %s", code, last)
		if code == 0 {
			t.Fatal("a second osimagefs mount on a busy cache directory exited 0")
		}
		if !strings.HasPrefix(last, "osimagefs: ") || !strings.Contains(last, cacheDir) {
			t.Fatalf("last stderr line %q does not name the cache directory %s", last, cacheDir)
		}
		if !strings.Contains(last, "pid "+strconv.Itoa(m.cmd.Process.Pid)) {
			t.Errorf("last stderr line %q does not name the holder, pid %d", last, m.cmd.Process.Pid)
		}
		if !strings.Contains(last, "--cache-dir") {
			t.Errorf("last stderr line %q does not say what to do (another --cache-dir)", last)
		}
		if isMounted(dir2) {
			t.Fatal("the refused mount left something mounted")
		}
		// The first daemon is unharmed.
		readAndCheck(t, filepath.Join(dir, "amd64/virtualization/cmdline"), seed.expected["amd64/virtualization/cmdline"])
		readAndCheck(t, filepath.Join(dir, "amd64/virtualization/initramfs"), seed.expected["amd64/virtualization/initramfs"])
		if err := m.terminate(t); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("different images share the chunks of a shared blob", func(t *testing.T) {
		cacheDir := t.TempDir()
		shared := []string{"kernel", "root.squashfs"}
		counter.Reset()
		dir := t.TempDir()
		m := startMount(t, counter.Host()+"/"+seed.ref, dir, "--plain-http", "--cache-dir", cacheDir)
		for _, name := range shared {
			readAndCheck(t, filepath.Join(dir, "amd64/virtualization", name), seed.expected["amd64/virtualization/"+name])
		}
		if err := m.terminate(t); err != nil {
			t.Fatal(err)
		}

		counter.Reset()
		dir2 := t.TempDir()
		m2 := startMount(t, counter.Host()+"/"+iron.ref, dir2, "--plain-http", "--cache-dir", cacheDir)
		for _, name := range shared {
			e := iron.expected["amd64/metal/"+name]
			dg := layerDigest(t, e)
			if seedDg := layerDigest(t, seed.expected["amd64/virtualization/"+name]); seedDg != dg {
				t.Fatalf("%s: the images do not share the blob (%s, %s)", name, seedDg, dg)
			}
			readAndCheck(t, filepath.Join(dir2, "amd64/metal", name), e)
			t.Logf("%s (%s, %s, read by the other image's mount): fetched %d bytes in %d requests", name, dg, mib(expectedSize(t, e)), counter.BytesFor(dg.String()), counter.RequestsFor(dg.String()))
			if n := counter.BytesFor(dg.String()); n != 0 {
				t.Errorf("%s: the second image's mount fetched %d bytes of the shared blob %s, want 0", name, n, dg)
			}
		}
		// A blob the first mount did not read is fetched: the counter works.
		e := iron.expected["amd64/metal/initramfs"]
		readAndCheck(t, filepath.Join(dir2, "amd64/metal/initramfs"), e)
		if n := counter.BytesFor(layerDigest(t, e).String()); n < expectedSize(t, e) {
			t.Errorf("initramfs, not read before: fetched %d bytes, want its %d", n, expectedSize(t, e))
		}
		if err := m2.terminate(t); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCacheSurvivesKill kills the daemon with SIGKILL while it fills the
// cache with a large file: every chunk file left is whole and right, and
// the next daemon on the directory reads the file correctly, fetching only
// what is not there.
func TestCacheSurvivesKill(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	disk := s.amd64[0].path
	source, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(source))
	dg := digest.FromBytes(source)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/kill", []layerFile{seedLayer("disk.img", disk, "disk.img")})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	cacheDir := t.TempDir()
	dir := t.TempDir()
	m := startMount(t, img.ref(counter.Host()), dir, "--plain-http", "--cache-dir", cacheDir)

	// A reader that streams the file at a bounded pace, so that the kill
	// lands in the middle of the fill.
	type result struct {
		read int64
		err  error
	}
	res := make(chan result, 1)
	go func() {
		f, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
		if err != nil {
			res <- result{0, err}
			return
		}
		defer f.Close()
		p := make([]byte, 1<<20)
		var off int64
		for off < size {
			n, err := f.ReadAt(p, off)
			off += int64(n)
			if err != nil && !errors.Is(err, io.EOF) {
				res <- result{off, err}
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		res <- result{off, nil}
	}()
	const killAt = 24 // chunk files in the cache
	deadline := time.Now().Add(60 * time.Second)
	for len(chunkFilesIn(t, cacheDir, chunkSize, dg)) < killAt {
		select {
		case r := <-res:
			t.Fatalf("the read ended (%d bytes, %v) before the cache held %d chunks", r.read, r.err, killAt)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never held %d chunks", killAt)
		}
		time.Sleep(time.Millisecond)
	}
	// Aim the kill at a chunk being written: wait (briefly) for a file in
	// tmp/.
	midWrite := false
	for wait := time.Now().Add(2 * time.Second); time.Now().Before(wait); {
		if ents, _ := os.ReadDir(filepath.Join(cacheDir, "tmp")); len(ents) > 0 {
			midWrite = true
			break
		}
	}
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	werr := <-m.done
	m.done <- werr
	killedAfter := counter.BytesFor(dg.String())
	r := <-res
	t.Logf("SIGKILL after %s fetched (a chunk being written in tmp/ at that moment: %v); the reader had read %s and got %v; daemon: %v",
		mib(killedAfter), midWrite, mib(r.read), r.err, werr)
	if r.err == nil {
		t.Fatal("the read finished before the daemon was killed")
	}
	// The dead mount answers ENOTCONN; take it away like an operator would.
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatalf("umount -l %s: %v", dir, err)
	}
	if isMounted(dir) {
		t.Fatal("still mounted after umount -l")
	}

	// Every chunk file left behind is whole and holds the right bytes.
	chunks := chunkFilesIn(t, cacheDir, chunkSize, dg)
	for i, p := range chunks {
		off := i * chunkSize
		want := min(int64(chunkSize), size-off)
		if off >= size {
			t.Errorf("chunk file %s is beyond the end of the blob", p)
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != want {
			t.Errorf("chunk %d: %d bytes on disk, want %d: a partly written chunk file", i, len(got), want)
			continue
		}
		if !bytes.Equal(got, source[off:off+want]) {
			t.Errorf("chunk %d: the file's bytes differ from the blob at %d", i, off)
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(cacheDir, "tmp"))
	used, files := cacheDirSize(cacheDir)
	t.Logf("after the kill: %d chunk files checked against the blob; %d files left in tmp/; %s in %d files in the cache directory", len(chunks), len(tmp), mib(used), files)
	if len(chunks) < killAt {
		t.Fatalf("%d chunk files after the kill, want at least %d", len(chunks), killAt)
	}
	if t.Failed() {
		return
	}

	// A new daemon on the same directory: the lock died with the old one,
	// tmp/ is cleared, and the file reads right, fetching only the chunks
	// that were not on disk.
	counter.Reset()
	dir2 := t.TempDir()
	m2 := startMount(t, img.ref(counter.Host()), dir2, "--plain-http", "--cache-dir", cacheDir)
	if tmp, _ := os.ReadDir(filepath.Join(cacheDir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ still holds %d files after the new daemon opened the cache", len(tmp))
	}
	sum := sumFile(t, filepath.Join(dir2, "amd64/virtualization/disk.img"))
	want := sha256.Sum256(source)
	if sum != hex.EncodeToString(want[:]) {
		t.Fatal("after the kill, the new mount reads disk.img wrong")
	}
	fetched := counter.BytesFor(dg.String())
	t.Logf("the new mount read all %s of disk.img, fetching %s (%d chunks were on disk)", mib(size), mib(fetched), len(chunks))
	if fetched > size-int64(len(chunks))*chunkSize {
		t.Errorf("the new mount fetched %d bytes, more than the %d not on disk", fetched, size-int64(len(chunks))*chunkSize)
	}
	if err := m2.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// faultProxy is a reverse proxy in front of a registry that inverts the
// byte at blob offset flipAt in every GET response for blob bad: a
// registry or middlebox serving corrupt content under a good digest.
type faultProxy struct {
	srv    *httptest.Server
	bad    string
	flipAt int64
	flips  atomic.Int64 // responses in which the byte was inverted
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

func newFaultProxy(t *testing.T, upstreamHost string, bad digest.Digest, flipAt int64) *faultProxy {
	t.Helper()
	target, err := url.Parse("http://" + upstreamHost)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{bad: bad.String(), flipAt: flipAt}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || !strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+p.bad) {
				return nil
			}
			var start int64
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusPartialContent:
				m := contentRangeRE.FindStringSubmatch(resp.Header.Get("Content-Range"))
				if m == nil {
					return fmt.Errorf("fault proxy: Content-Range %q", resp.Header.Get("Content-Range"))
				}
				start, _ = strconv.ParseInt(m[1], 10, 64)
				end, _ := strconv.ParseInt(m[2], 10, 64)
				if p.flipAt < start || p.flipAt > end {
					return nil
				}
			default:
				return nil
			}
			p.flips.Add(1)
			resp.Body = &flipBody{ReadCloser: resp.Body, pos: start, at: p.flipAt}
			return nil
		},
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

// Host is the proxy's "127.0.0.1:PORT".
func (p *faultProxy) Host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// flipBody inverts the byte at blob offset at as it streams by; pos is the
// blob offset of the next byte read.
type flipBody struct {
	io.ReadCloser
	pos, at int64
}

func (b *flipBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.at >= b.pos && b.at < b.pos+int64(n) {
		p[b.at-b.pos] ^= 0xff
	}
	b.pos += int64(n)
	return n, err
}

// TestCacheVerifyMismatch: a registry serves one byte of a layer wrong.
// Until the layer is complete in the cache, reads succeed (with the wrong
// byte: nothing can tell yet); once it is complete, it is checked against
// its digest, fails, and from then on every read of it fails with EIO,
// the daemon says which blob, and its chunks are gone from the cache.
func TestCacheVerifyMismatch(t *testing.T) {
	requireMountable(t)
	const (
		badSize = 24<<20 + 17
		flipAt  = 1000 // in chunk 0: read first, long before completion
	)
	tmp := t.TempDir()
	badData := fixture.RandomBytes(21, badSize)
	goodData := fixture.RandomBytes(22, 3<<20+5)
	badPath, goodPath := filepath.Join(tmp, "kernel"), filepath.Join(tmp, "initramfs")
	if err := os.WriteFile(badPath, badData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goodPath, goodData, 0o644); err != nil {
		t.Fatal(err)
	}
	badDg := digest.FromBytes(badData)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/corrupt", []layerFile{
		seedLayer("kernel", badPath, "kernel"),
		seedLayer("initramfs", goodPath, "initramfs"),
	})
	proxy := newFaultProxy(t, reg.Host(), badDg, flipAt)
	cacheDir := t.TempDir()
	dir := t.TempDir()
	m := startMount(t, img.ref(proxy.Host()), dir, "--plain-http", "--cache-dir", cacheDir)
	file := filepath.Join(dir, "amd64/virtualization/kernel")

	// The first full read serves the wrong byte (nothing can know yet),
	// unless read-ahead completed the blob on disk before the reader got
	// to its end: then verification already failed it, and the rest of
	// the read gets EIO.
	got, err := os.ReadFile(file)
	completed := time.Now()
	switch {
	case err != nil && errors.Is(err, syscall.EIO):
		t.Logf("first read: EIO before its end: read-ahead completed the blob and it failed verification first (%v)", err)
	case err != nil:
		t.Fatalf("the first read of the layer failed with something else than EIO: %v", err)
	default:
		if len(got) != badSize {
			t.Fatalf("read %d bytes, want %d", len(got), badSize)
		}
		if got[flipAt] == badData[flipAt] {
			t.Fatal("the proxy's wrong byte was not served: the fault was not injected")
		}
		got[flipAt] ^= 0xff
		if !bytes.Equal(got, badData) {
			t.Fatal("the first read differs from the source in more than the flipped byte")
		}
		t.Logf("first read: %s, wrong at byte %d as served (the proxy flipped %d responses)", mib(badSize), flipAt, proxy.flips.Load())
	}
	if proxy.flips.Load() == 0 {
		t.Fatal("the proxy flipped no response: the fault was not injected")
	}

	// Shortly after completion, reads fail with EIO, although the first
	// read left every page of the file in the kernel's page cache: the
	// daemon drops them when verification fails.
	var rerr error
	for {
		_, rerr = os.ReadFile(file)
		if rerr != nil || time.Since(completed) > 10*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(rerr, syscall.EIO) {
		t.Fatalf("reading the corrupt layer %s after it was complete: %v, want EIO", time.Since(completed).Round(time.Millisecond), rerr)
	}
	t.Logf("%s after the first read ended: %v", time.Since(completed).Round(time.Millisecond), rerr)
	// The daemon names the blob, once it has dropped the kernel's pages of
	// it (reads fail a moment before that: the blob is condemned first).
	var verdict string
	for start := time.Now(); verdict == "" && time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(m.stderr.String(), "\n") {
			if strings.Contains(line, badDg.String()) && strings.Contains(line, "failed verification") {
				verdict = line
			}
		}
	}
	if verdict == "" {
		t.Fatalf("the daemon's stderr has no line naming %s and its failed verification:\n%s", badDg, m.stderr.String())
	}
	t.Logf("daemon: %s", verdict)
	// Every part of it fails, not only what was wrong, with no page left
	// to serve it from.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, flipAt, 8 << 20, badSize - 1} {
		if _, err := f.ReadAt(make([]byte, 1), off); !errors.Is(err, syscall.EIO) {
			t.Errorf("read at %d: %v, want EIO", off, err)
		}
	}
	f.Close()

	// Its chunks are gone from the cache, and it is not marked verified.
	if left := chunkFilesIn(t, cacheDir, chunkSize, badDg); len(left) != 0 {
		t.Errorf("%d chunk files of the corrupt blob are left in the cache", len(left))
	}
	if _, err := os.Stat(filepath.Join(blobCacheDir(cacheDir, chunkSize, badDg), "verified")); err == nil {
		t.Error("the corrupt blob is marked verified")
	}
	// The other layer, served right, reads right.
	if g, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/initramfs")); err != nil || !bytes.Equal(g, goodData) {
		t.Errorf("the good layer: %v, equal %v", err, bytes.Equal(g, goodData))
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}
