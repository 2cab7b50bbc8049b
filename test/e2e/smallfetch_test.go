package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestRandomReadsFetchLittle: through a real mount of a real registry, a
// random 4 KiB read fetches one aligned 64 KiB chunk, and a sequential
// reader is fetched ahead of only once it has read 1 MiB in order, and
// then by no more than it has read. The kernel's own read-ahead is turned
// off for the file (POSIX_FADV_RANDOM), so that the daemon sees exactly
// the reads made here.
func TestRandomReadsFetchLittle(t *testing.T) {
	requireMountable(t)
	const size = 64 << 20
	data := fixture.RandomBytes(21, size)
	src := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/smallfetch", []layerFile{seedLayer("disk.img", src, "disk.img")})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	dir := t.TempDir()
	startMount(t, img.ref(counter.Host()), dir, "--plain-http")
	dg := img.layers["disk.img"].Digest.String()

	open := func(t *testing.T) *os.File {
		f, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
			t.Fatal(err)
		}
		return f
	}
	read := func(t *testing.T, f *os.File, off, n int64) {
		t.Helper()
		p := make([]byte, n)
		if _, err := f.ReadAt(p, off); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, off, err)
		}
		if !bytes.Equal(p, data[off:off+n]) {
			t.Fatalf("read %d bytes at %d: wrong bytes", n, off)
		}
	}

	t.Run("random 4 KiB reads fetch one 64 KiB chunk each", func(t *testing.T) {
		f := open(t)
		counter.Reset()
		var read4k, fetched int64
		for i := int64(0); i < 24; i++ {
			// Spread over the file, 4 KiB aligned, never in a chunk read
			// before, at different places in their chunks.
			off := (i*2654435761)%(size/chunkSize)*chunkSize + (i%16)*4096
			before := counter.BytesFor(dg)
			read(t, f, off, 4096)
			settled(counter)
			n := counter.BytesFor(dg) - before
			read4k += 4096
			fetched += n
			if n > chunkSize {
				t.Fatalf("a 4 KiB read at %d fetched %d bytes, want at most %d", off, n, chunkSize)
			}
		}
		ranges := counter.Ranges(dg)
		t.Logf("24 random 4 KiB reads fetched %s in %d requests: %.1f KiB per read", mib(fetched), len(ranges), float64(fetched)/24/1024)
		if fetched != 24*chunkSize || len(ranges) != 24 {
			t.Fatalf("fetched %d bytes in %d requests, want 24 requests of one %d-byte chunk: %v", fetched, len(ranges), chunkSize, ranges)
		}
		for _, r := range ranges {
			var from, to int64
			if _, err := fmt.Sscanf(r, "bytes=%d-%d", &from, &to); err != nil || from%chunkSize != 0 || to-from+1 != chunkSize {
				t.Fatalf("range %q: want one aligned %d-byte chunk", r, chunkSize)
			}
		}
	})

	t.Run("read-ahead opens after 1 MiB in order, by no more than was read", func(t *testing.T) {
		f := open(t)
		counter.Reset()
		const start, step = 32 << 20, 128 << 10
		off := int64(start)
		for ; off < start+(1<<20)-step; off += step {
			read(t, f, off, step)
		}
		if n := settled(counter); n != off-start {
			t.Fatalf("reading %d bytes in order fetched %d: nothing may be fetched ahead before 1 MiB", off-start, n)
		}
		for ; off < start+(4<<20); off += step {
			read(t, f, off, step)
		}
		n, readBytes := settled(counter), off-start
		t.Logf("reading %s in order fetched %s in %d requests", mib(readBytes), mib(n), len(counter.Ranges(dg)))
		if n <= readBytes {
			t.Fatalf("reading %d bytes in order fetched %d: no read-ahead", readBytes, n)
		}
		if n > 2*readBytes {
			t.Fatalf("reading %d bytes in order fetched %d: more ahead than was read", readBytes, n)
		}
	})
}
