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
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The disk cache end to end: the built binary, a real registry, the counting
// proxy, and the cache directory as it is on disk. Layout (cache/disk.go):
// <dir>/usage, <dir>/evict.lock, <dir>/tmp/, and per blob
// <dir>/v2/<chunk size>/<alg>/<hex>/{data,index}. The tests look at it as
// another process would, through the cache package (cacheView), and at the
// disk blocks the data files take (cacheAllocated).

// layerDigest is the digest of a layer's source file.
func layerDigest(t *testing.T, e expectedFile) digest.Digest {
	t.Helper()
	return digest.Digest("sha256:" + expectedSum(t, e))
}

// cacheView opens the cache directory as one more process would, with a
// limit so large it never evicts, and closes it at the end of the test.
func cacheView(t *testing.T, cacheDir string) *cache.Disk {
	t.Helper()
	d, err := cache.OpenDisk(cacheDir, chunkSize, 1<<50, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// cacheAllocated is the bytes of disk the blobs' data files under the
// cache directory take (their blocks, holes not counted).
func cacheAllocated(cacheDir string) int64 {
	var total int64
	_ = filepath.WalkDir(filepath.Join(cacheDir, "v2"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Name() != "data" {
			return nil
		}
		if info, err := de.Info(); err == nil {
			total += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	return total
}

// checkCachedChunks checks that every chunk of blob dg the cache holds is
// whole and right (source is the blob), and returns how many there are.
func checkCachedChunks(t *testing.T, view *cache.Disk, dg digest.Digest, source []byte) int64 {
	t.Helper()
	size := int64(len(source))
	var n int64
	for i := int64(0); i*chunkSize < size; i++ {
		off := i * chunkSize
		p := make([]byte, min(chunkSize, size-off))
		ok, err := view.ReadAt(cache.Key{Digest: dg, Index: i}, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		n++
		if !bytes.Equal(p, source[off:off+int64(len(p))]) {
			t.Errorf("chunk %d of %s is in the cache with wrong bytes: a partly written chunk", i, dg)
		}
	}
	return n
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
	view := cacheView(t, cacheDir)
	deadline := time.Now().Add(60 * time.Second)
	for dg := range layers {
		for {
			if view.Verified(dg) {
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
	t.Logf("cache directory after the first mount: %s of chunks, %s allocated", mib(view.Used()), mib(cacheAllocated(cacheDir)))

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

// TestCacheStaysWithinSize reads a file nine times the size of the disk
// cache while sampling the disk blocks the cache's files take: they never
// exceed the size by more than a chunk (the one being written), and the
// bytes read are right.
func TestCacheStaysWithinSize(t *testing.T) {
	requireMountable(t)
	const (
		limit    = 8 << 20
		fileSize = 72<<20 + 4321
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
	startMount(t, img.ref(reg.Host()), dir, "--plain-http", "--cache-dir", cacheDir, "--cache-size", "8MiB")

	peak, samples, stop := sampleCache(cacheDir)
	start := time.Now()
	got, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/disk.img"))
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond) // let the writes in flight land
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the file read through an 8 MiB disk cache is not the source")
	}
	bound := int64(limit + chunkSize)
	final := cacheAllocated(cacheDir)
	t.Logf("read %s in %s; %d samples of the cache's blocks: at most %s (%.2f chunks over the limit); %s at the end; limit %s",
		mib(fileSize), took.Round(time.Millisecond), samples(), mib(peak()), float64(peak()-limit)/chunkSize, mib(final), mib(limit))
	if peak() > bound {
		t.Fatalf("the cache took %d bytes of disk, more than %d (the limit plus the chunk being written)", peak(), bound)
	}
	if final > limit {
		t.Fatalf("after the read the cache takes %d bytes, over the %d-byte limit", final, limit)
	}
	if peak() < limit-chunkSize {
		t.Fatalf("the cache never took more than %d bytes: was the disk cache used at all?", peak())
	}
}

// sampleCache samples cacheAllocated every 2 ms until stop is called, and
// reports the peak and the number of samples.
func sampleCache(cacheDir string) (peak, samples func() int64, stop func()) {
	var maxSeen, n atomic.Int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if a := cacheAllocated(cacheDir); a > maxSeen.Load() {
				maxSeen.Store(a)
			}
			n.Add(1)
			select {
			case <-quit:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return maxSeen.Load, n.Load, func() { close(quit); <-done }
}

// TestCacheDirShared: two daemons use one cache directory at the same
// time, and mounts of different images that share blobs share their
// chunks.
func TestCacheDirShared(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	seed := pushSeedIndex(t, reg.Host(), s)
	iron := pushIronCore(t, reg.Host(), s)
	counter := registrytest.NewCountingProxy(t, reg.Host())

	t.Run("different images share the chunks of a shared blob", func(t *testing.T) {
		cacheDir := t.TempDir()
		shared := []string{"kernel", "root.squashfs"}
		counter.Reset()
		dir := t.TempDir()
		m := startMount(t, counter.Host()+"/"+seed.ref, dir, "--plain-http", "--cache-dir", cacheDir)
		for _, name := range shared {
			readAndCheck(t, filepath.Join(dir, "amd64/virtualization", name), seed.expected["amd64/virtualization/"+name])
		}
		// The first daemon stays up: both use the directory at once.
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
		readAndCheck(t, filepath.Join(dir, "amd64/virtualization/initramfs"), seed.expected["amd64/virtualization/initramfs"])
		for _, m := range []*mountProc{m, m2} {
			if err := m.terminate(t); err != nil {
				t.Fatal(err)
			}
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
	const killAt = 24 // chunks in the cache
	view := cacheView(t, cacheDir)
	deadline := time.Now().Add(60 * time.Second)
	for view.CachedBytes(dg) < killAt*chunkSize {
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
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	werr := <-m.done
	m.done <- werr
	killedAfter := counter.BytesFor(dg.String())
	r := <-res
	t.Logf("SIGKILL after %s fetched; the reader had read %s and got %v; daemon: %v",
		mib(killedAfter), mib(r.read), r.err, werr)
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

	// Every chunk left behind is whole and holds the right bytes, and no
	// lock of the dead daemon holds any chunk up.
	chunks := checkCachedChunks(t, view, dg, source)
	for i := int64(0); i*chunkSize < size; i++ {
		k := cache.Key{Digest: dg, Index: i}
		r, err := view.Claim(k, size)
		if err != nil || r == cache.Busy {
			t.Fatalf("chunk %d after the kill: claim %v, %v; want it free", i, r, err)
		}
		view.Release(k)
	}
	t.Logf("after the kill: %d chunks checked against the blob; %s of chunks, %s allocated", chunks, mib(view.Used()), mib(cacheAllocated(cacheDir)))
	if chunks < killAt {
		t.Fatalf("%d chunks after the kill, want at least %d", chunks, killAt)
	}
	if t.Failed() {
		return
	}

	// A new daemon on the same directory reads the file right, fetching
	// only the chunks that were not on disk.
	counter.Reset()
	dir2 := t.TempDir()
	m2 := startMount(t, img.ref(counter.Host()), dir2, "--plain-http", "--cache-dir", cacheDir)
	sum := sumFile(t, filepath.Join(dir2, "amd64/virtualization/disk.img"))
	want := sha256.Sum256(source)
	if sum != hex.EncodeToString(want[:]) {
		t.Fatal("after the kill, the new mount reads disk.img wrong")
	}
	fetched := counter.BytesFor(dg.String())
	t.Logf("the new mount read all %s of disk.img, fetching %s (%d chunks were on disk)", mib(size), mib(fetched), chunks)
	if fetched > size-chunks*chunkSize {
		t.Errorf("the new mount fetched %d bytes, more than the %d not on disk", fetched, size-chunks*chunkSize)
	}
	if err := m2.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// faultProxy is a reverse proxy in front of a registry that inverts the
// byte at blob offset flipAt in every GET response for blob bad that
// carries it (in the first limit of them when limit > 0): a registry or
// middlebox serving corrupt content under a good digest. More bytes to
// flip are added with flip.
type faultProxy struct {
	srv   *httptest.Server
	bad   string
	mu    sync.Mutex
	at    []*flipRule
	flips atomic.Int64 // responses in which a byte was inverted
}

// flipRule is one byte the proxy inverts, in its first limit answers
// (every answer when limit is 0).
type flipRule struct {
	at, limit, done int64
}

// flip inverts the byte at off too, in the first limit answers carrying
// it (every one when limit is 0).
func (p *faultProxy) flip(off, limit int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, &flipRule{at: off, limit: limit})
}

// flipsIn returns the offsets to invert in an answer carrying the bytes
// [start, end], using up their budgets.
func (p *faultProxy) flipsIn(start, end int64) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int64
	for _, r := range p.at {
		if r.at >= start && r.at <= end && (r.limit == 0 || r.done < r.limit) {
			r.done++
			out = append(out, r.at)
		}
	}
	return out
}

var contentRangeRE = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

func newFaultProxy(t *testing.T, upstreamHost string, bad digest.Digest, flipAt int64) *faultProxy {
	t.Helper()
	target, err := url.Parse("http://" + upstreamHost)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{bad: bad.String()}
	p.flip(flipAt, 0)
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
			start, end := int64(0), int64(1<<62)
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusPartialContent:
				m := contentRangeRE.FindStringSubmatch(resp.Header.Get("Content-Range"))
				if m == nil {
					return fmt.Errorf("fault proxy: Content-Range %q", resp.Header.Get("Content-Range"))
				}
				start, _ = strconv.ParseInt(m[1], 10, 64)
				end, _ = strconv.ParseInt(m[2], 10, 64)
			default:
				return nil
			}
			at := p.flipsIn(start, end)
			if len(at) == 0 {
				return nil
			}
			p.flips.Add(1)
			resp.Body = &flipBody{ReadCloser: resp.Body, pos: start, at: at}
			return nil
		},
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

// Host is the proxy's "127.0.0.1:PORT".
func (p *faultProxy) Host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// flipBody inverts the bytes at blob offsets at as they stream by; pos is
// the blob offset of the next byte read.
type flipBody struct {
	io.ReadCloser
	pos int64
	at  []int64
}

func (b *flipBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	for _, at := range b.at {
		if at >= b.pos && at < b.pos+int64(n) {
			p[at-b.pos] ^= 0xff
		}
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
	// Without a table, auto checks the blob whole, as blob does.
	for _, mode := range []string{"auto", "blob"} {
		t.Run("verify "+mode, func(t *testing.T) { testCacheVerifyMismatch(t, mode) })
	}
}

func testCacheVerifyMismatch(t *testing.T, mode string) {
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
	m := startMount(t, img.ref(proxy.Host()), dir, "--plain-http", "--cache-dir", cacheDir, "--verify", mode)
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
	view := cacheView(t, cacheDir)
	if left := view.CachedBytes(badDg); left != 0 {
		t.Errorf("%d bytes of the corrupt blob are left in the cache", left)
	}
	if view.Verified(badDg) {
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
