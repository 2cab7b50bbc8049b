package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The disk cache shared by many daemons at once, as on a hypervisor host:
// every mount is its own process, all on one --cache-dir.

// sharedLayer is a random layer file and its digest.
type sharedLayer struct {
	role, name string
	path       string
	data       []byte
	digest     digest.Digest
}

func newSharedLayer(t *testing.T, dir, role, name string, seed uint64, size int) sharedLayer {
	t.Helper()
	data := fixture.RandomBytes(seed, size)
	p := filepath.Join(dir, fmt.Sprintf("%s-%d", name, seed))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return sharedLayer{role, name, p, data, digest.FromBytes(data)}
}

// readShared reads a mounted layer file whole and checks its bytes.
func readShared(p string, l sharedLayer) error {
	got, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, l.data) {
		return fmt.Errorf("%s: wrong bytes (sha256 %x)", p, sha256.Sum256(got))
	}
	return nil
}

// TestSharedCacheTenMounts: five images that share blobs, each mounted
// twice, ten daemons on one cache directory, all reading everything at
// once (half of them prefetching every layer too). Every chunk of every
// blob is fetched from the registry exactly once.
func TestSharedCacheTenMounts(t *testing.T) {
	requireMountable(t)
	src := t.TempDir()
	disk := newSharedLayer(t, src, "disk.img", "disk.img", 40, 32<<20+123) // in all five
	kernels := []sharedLayer{newSharedLayer(t, src, "kernel", "kernel", 41, 4<<20+7), newSharedLayer(t, src, "kernel", "kernel", 42, 4<<20)}
	squash := newSharedLayer(t, src, "squashfs", "root.squashfs", 43, 8<<20+1) // in two
	reg := registrytest.Start(t)
	type image struct {
		ref    string
		layers []sharedLayer
	}
	var images []image
	distinct := map[digest.Digest]sharedLayer{}
	for i := range 5 {
		ls := []sharedLayer{disk, kernels[min(i/3, 1)], newSharedLayer(t, src, "initramfs", "initramfs", uint64(50+i), 2<<20+i)}
		if i == 1 || i == 3 {
			ls = append(ls, squash)
		}
		var files []layerFile
		for _, l := range ls {
			files = append(files, seedLayer(l.role, l.path, l.name))
			distinct[l.digest] = l
		}
		img := pushMediaImage(t, reg.Host(), fmt.Sprintf("os/shared%d", i), files)
		images = append(images, image{ref: img.digest, layers: ls})
		images[i].ref = img.ref("")
	}
	counter := registrytest.NewCountingProxy(t, reg.Host())
	cacheDir := t.TempDir()

	var mounts []*mountProc
	var dirs []string
	var wantAlone, wantDistinct int64
	for i := range 10 {
		img := images[i/2]
		dir := t.TempDir()
		prefetch := "none"
		if i%2 == 1 {
			prefetch = "all"
		}
		m := startMountBinary(t, plainBinary, counter.Host()+img.ref, dir, "--plain-http", "--cache-dir", cacheDir, "--prefetch", prefetch)
		mounts, dirs = append(mounts, m), append(dirs, dir)
		for _, l := range img.layers {
			wantAlone += int64(len(l.data))
		}
	}
	for _, l := range distinct {
		wantDistinct += int64(len(l.data))
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, dir := range dirs {
		for _, l := range images[i/2].layers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := readShared(filepath.Join(dir, "amd64/virtualization", l.name), l); err != nil {
					errs <- fmt.Errorf("mount %d: %w", i, err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	took := time.Since(start)
	fetched := settled(counter)
	var layerBytes int64
	for dg, l := range distinct {
		n := counter.BytesFor(dg.String())
		layerBytes += n
		if n != int64(len(l.data)) {
			t.Errorf("%s %s (%s): fetched %d bytes in %d requests, want its %d exactly once", l.name, dg, mib(int64(len(l.data))), n, counter.RequestsFor(dg.String()), len(l.data))
		}
	}
	var rssSum, rssMax int64
	for i, m := range mounts {
		rss, err := fixture.PeakRSS(m.cmd.Process.Pid)
		if err != nil {
			t.Fatalf("mount %d: %v", i, err)
		}
		rssSum, rssMax = rssSum+rss, max(rssMax, rss)
	}
	t.Logf("10 daemons read %s of layer files in %s (with a cache each, all of it would be fetched); the registry served %s of layers (%s of distinct blobs) and %s of blobs in all, in %d requests",
		mib(wantAlone), took.Round(time.Millisecond), mib(layerBytes), mib(wantDistinct), mib(fetched), counter.BlobRequests())
	t.Logf("peak RSS: %s for the 10 daemons together, at most %s for one", mib(rssSum), mib(rssMax))
	if layerBytes != wantDistinct {
		t.Errorf("the 10 mounts fetched %d layer bytes, want %d (each distinct blob once)", layerBytes, wantDistinct)
	}
	for _, m := range mounts {
		if err := m.terminate(t); err != nil {
			t.Error(err)
		}
	}
}

// TestSharedCacheBoundAcrossProcesses: three daemons on one cache
// directory read, between them, three times its size. The disk blocks the
// cache takes never exceed its size by more than a chunk per daemon, and
// every read is right although the others keep evicting what it cached.
func TestSharedCacheBoundAcrossProcesses(t *testing.T) {
	requireMountable(t)
	const limit = 24 << 20
	src := t.TempDir()
	reg := registrytest.Start(t)
	cacheDir := t.TempDir()
	var layers []sharedLayer
	var dirs []string
	for i := range 3 {
		l := newSharedLayer(t, src, "disk.img", "disk.img", uint64(60+i), limit)
		img := pushMediaImage(t, reg.Host(), fmt.Sprintf("os/bound%d", i), []layerFile{seedLayer(l.role, l.path, l.name)})
		dir := t.TempDir()
		startMount(t, img.ref(reg.Host()), dir, "--plain-http", "--cache-dir", cacheDir, "--cache-size", "24MiB")
		layers, dirs = append(layers, l), append(dirs, dir)
	}
	peak, samples, stop := sampleCache(cacheDir)
	var wg sync.WaitGroup
	for round := range 2 { // the second round reads what the others evicted
		for i, dir := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := readShared(filepath.Join(dir, "amd64/virtualization/disk.img"), layers[i]); err != nil {
					t.Errorf("round %d, mount %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
		for _, dir := range dirs {
			dropPageCache(t, filepath.Join(dir, "amd64/virtualization/disk.img"))
		}
	}
	time.Sleep(200 * time.Millisecond)
	stop()
	// Each daemon may be writing several chunks at once: its disk queue's
	// writer, and the fetches that write themselves while the queue is
	// full (at most --parallel, 16).
	const writing = 1 + 16
	bound := int64(limit + 3*writing*chunkSize)
	t.Logf("3 daemons read %s (twice) through a %s cache: %d samples, at most %s allocated (%.2f chunks over), %s at the end",
		mib(3*limit), mib(limit), samples(), mib(peak()), float64(peak()-limit)/chunkSize, mib(cacheAllocated(cacheDir)))
	if peak() > bound {
		t.Errorf("the cache took %d bytes of disk, more than %d (its size plus the chunks each daemon may be writing)", peak(), bound)
	}
	if final := cacheAllocated(cacheDir); final > limit {
		t.Errorf("after the reads the cache takes %d bytes, over its %d", final, limit)
	}
}

// TestSharedCacheKillDuringFill: three daemons read one large layer at
// the same time through one cache directory; one is killed with SIGKILL
// while they fill it. The other two read every byte right and are not
// held up by chunks the dead one had claimed, and the cache holds no
// partial chunk.
func TestSharedCacheKillDuringFill(t *testing.T) {
	requireMountable(t)
	src := t.TempDir()
	l := newSharedLayer(t, src, "disk.img", "disk.img", 70, 96<<20+5)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/killshared", []layerFile{seedLayer(l.role, l.path, l.name)})
	cacheDir := t.TempDir()
	var mounts []*mountProc
	var dirs []string
	for range 3 {
		dir := t.TempDir()
		mounts = append(mounts, startMount(t, img.ref(reg.Host()), dir, "--plain-http", "--cache-dir", cacheDir))
		dirs = append(dirs, dir)
	}
	// Paced readers, so that the kill lands in the middle of the fill.
	results := make([]chan error, 3)
	for i, dir := range dirs {
		results[i] = make(chan error, 1)
		go func() {
			f, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
			if err != nil {
				results[i] <- err
				return
			}
			defer f.Close()
			h := sha256.New()
			p := make([]byte, 1<<20)
			for off := int64(0); off < int64(len(l.data)); {
				n, err := f.ReadAt(p, off)
				h.Write(p[:n])
				off += int64(n)
				if err != nil && !errors.Is(err, io.EOF) {
					results[i] <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			if got := digest.NewDigest(digest.SHA256, h); got != l.digest {
				results[i] <- fmt.Errorf("read %s, want %s", got, l.digest)
				return
			}
			results[i] <- nil
		}()
	}
	view := cacheView(t, cacheDir)
	deadline := time.Now().Add(60 * time.Second)
	for view.CachedBytes(l.digest) < 24*chunkSize {
		if time.Now().After(deadline) {
			t.Fatal("the cache never held 24 chunks")
		}
		time.Sleep(time.Millisecond)
	}
	if err := mounts[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := view.CachedBytes(l.digest)
	for i := 1; i < 3; i++ {
		select {
		case err := <-results[i]:
			if err != nil {
				t.Errorf("mount %d, after mount 0 was killed: %v", i, err)
			}
		case <-time.After(120 * time.Second):
			t.Fatalf("mount %d did not finish its read in 120 s after mount 0 was killed", i)
		}
	}
	if err := <-results[0]; err == nil {
		t.Error("the killed mount's reader finished: the kill came too late to test anything")
	}
	_ = syscall.Unmount(dirs[0], syscall.MNT_DETACH)
	chunks := checkCachedChunks(t, view, l.digest, l.data)
	t.Logf("SIGKILL with %s in the cache; the other two read all %s right; %d chunks checked against the blob",
		mib(killedAt), mib(int64(len(l.data))), chunks)
	if want := (int64(len(l.data)) + chunkSize - 1) / chunkSize; chunks != want {
		t.Errorf("%d chunks in the cache after the others read everything, want all %d", chunks, want)
	}
	for i := int64(0); i*chunkSize < int64(len(l.data)); i++ {
		if r, err := view.Claim(cache.Key{Digest: l.digest, Index: i}, int64(len(l.data))); err != nil || r != cache.Present {
			t.Errorf("chunk %d: claim %v, %v; want present", i, r, err)
		}
	}
	for _, m := range mounts[1:] {
		if err := m.terminate(t); err != nil {
			t.Error(err)
		}
	}
}
