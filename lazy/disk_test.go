package lazy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// diskFetcher makes a Fetcher with a fresh memory cache over disk, closed
// at the end of the test.
func diskFetcher(t *testing.T, src Source, disk *cache.Disk, chunkSize int64) *Fetcher {
	t.Helper()
	mem, err := cache.NewMemory(64<<20, chunkSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, Options{ChunkSize: chunkSize, Disk: disk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func openDisk(t *testing.T, dir string, chunkSize, limit int64) *cache.Disk {
	t.Helper()
	d, err := cache.OpenDisk(dir, chunkSize, limit, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// chunksOnDisk counts the chunks of blob dg (of size bytes) that another
// process opening the cache directory dir would find.
func chunksOnDisk(t *testing.T, dir string, cs int64, dg digest.Digest, size int64) int64 {
	t.Helper()
	d, err := cache.OpenDisk(dir, cs, 64<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int64
	for i := range numChunks(size, cs) {
		if d.Has(cache.Key{Digest: dg, Index: i}) {
			n++
		}
	}
	return n
}

// readAll reads the whole blob with reads of step bytes.
func readAll(t *testing.T, b *Blob, step int) ([]byte, error) {
	t.Helper()
	out := make([]byte, 0, b.Size())
	p := make([]byte, step)
	for off := int64(0); off < b.Size(); off += int64(step) {
		n, err := b.ReadAt(context.Background(), p, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return out, err
		}
		out = append(out, p[:n]...)
	}
	return out, nil
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDiskFilledAndServedAfterRestart: reads fill the disk cache (and the
// complete blob gets verified); a new Fetcher with an empty memory cache
// over the reopened directory serves every byte without one request.
func TestDiskFilledAndServedAfterRestart(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(1, 20*cs+1234)
	dg := digest.FromBytes(data)
	src := &memSource{data: data}
	disk := openDisk(t, dir, cs, 64<<20)
	f := diskFetcher(t, src, disk, cs)
	b := f.Blob(dg, int64(len(data)))

	got, err := readAll(t, b, 50_000) // reads that straddle chunks
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes on the cold read")
	}
	f.diskq.wait() // every chunk fetched is on disk
	chunks := numChunks(int64(len(data)), cs)
	for i := range chunks {
		if !disk.Has(cache.Key{Digest: dg, Index: i}) {
			t.Fatalf("chunk %d is not on disk after the blob was read", i)
		}
	}
	if disk.Used() != int64(len(data)) {
		t.Fatalf("disk cache holds %d bytes, want %d", disk.Used(), len(data))
	}
	if n := chunksOnDisk(t, dir, cs, dg, int64(len(data))); n != chunks {
		t.Fatalf("%d chunks on disk, want %d", n, chunks)
	}
	waitFor(t, "the complete blob to be verified", func() bool { return disk.Verified(dg) })
	coldRequests := src.requests.Load()
	t.Logf("cold read: %d range requests, %d bytes", coldRequests, src.bytes.Load())

	// "Restart": close the directory, open it again, new Fetcher, empty
	// memory cache.
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	src2 := &memSource{data: data}
	disk2 := openDisk(t, dir, cs, 64<<20)
	if !disk2.Verified(dg) {
		t.Fatal("the blob is not verified after reopening")
	}
	b2 := diskFetcher(t, src2, disk2, cs).Blob(dg, int64(len(data)))
	for _, step := range []int{4096, 50_000, len(data)} {
		got, err := readAll(t, b2, step)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("wrong bytes after the restart (reads of %d)", step)
		}
	}
	b2.Prefetch(0, int64(len(data)))
	if err := b2.Fill(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if n := src2.requests.Load(); n != 0 {
		t.Fatalf("after the restart the source got %d requests, want 0", n)
	}
}

// flipSource serves blobs by digest, with the byte at flipAt of blob bad
// inverted, and counts requests: a registry (or a man in the middle)
// serving wrong bytes for one blob.
type flipSource struct {
	blobs    map[digest.Digest][]byte
	bad      digest.Digest
	flipAt   int64
	requests atomic.Int64
}

func (s *flipSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	s.requests.Add(1)
	data, ok := s.blobs[d]
	if !ok {
		return errors.New("no such blob")
	}
	var sent atomic.Int64
	return serveParts(data, parts, off, func(i int) {
		if p := parts[i]; d == s.bad && s.flipAt >= off && s.flipAt < off+int64(len(p)) {
			p[s.flipAt-off] ^= 0xff
		}
		off += int64(len(parts[i]))
		done(i)
	}, &sent)
}

func (s *flipSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	return errors.New("flipSource serves ranges only")
}

// TestDiskCorruptBlobFailsAfterCompletion: a source serves a wrong byte.
// Reads return it until the blob is complete on disk; then verification
// fails, the chunks are removed from disk, and every later read fails with
// ErrCorruptBlob, even of parts that were fine.
func TestDiskCorruptBlobFailsAfterCompletion(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(1, 10*cs+99)
	dg := digest.FromBytes(data)
	const flipAt = 3*cs + 17
	good := fixture.RandomBytes(1, 3*cs+5)[1:] // another blob, served right
	gdg := digest.FromBytes(good)
	src := &flipSource{blobs: map[digest.Digest][]byte{dg: data, gdg: good}, bad: dg, flipAt: flipAt}
	disk := openDisk(t, dir, cs, 64<<20)
	f := diskFetcher(t, src, disk, cs)
	b := f.Blob(dg, int64(len(data)))

	// All but the last chunk: the blob is not complete, reads succeed and
	// (it cannot be known yet) the wrong byte is served.
	p := make([]byte, 10*cs)
	if _, err := b.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatalf("read before completion: %v", err)
	}
	if p[flipAt] == data[flipAt] || !bytes.Equal(p[:flipAt], data[:flipAt]) || !bytes.Equal(p[flipAt+1:], data[flipAt+1:10*cs]) {
		t.Fatal("the read before completion is not the source's bytes (one flipped)")
	}
	f.diskq.wait() // every chunk fetched is on disk
	if n := chunksOnDisk(t, dir, cs, dg, int64(len(data))); n != 10 {
		t.Fatalf("%d chunks on disk before completion, want 10", n)
	}
	if _, err := b.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatalf("read again before completion: %v", err)
	}
	// The last chunk completes the blob: verification runs and fails.
	if _, err := b.ReadAt(context.Background(), make([]byte, 10), int64(len(data))-10); err != nil && !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("read of the last chunk: %v", err)
	}
	var err error
	waitFor(t, "reads to fail with ErrCorruptBlob", func() bool {
		_, err = b.ReadAt(context.Background(), make([]byte, 10), 0)
		return err != nil
	})
	if !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("read after verification: %v, want ErrCorruptBlob", err)
	}
	var mm *integrity.DigestMismatchError
	if !errors.As(err, &mm) || mm.Digest != dg {
		t.Fatalf("error %v does not carry the digest mismatch of %s", err, dg)
	}
	if !strings.Contains(err.Error(), dg.String()) {
		t.Fatalf("error %q does not name the blob", err)
	}
	t.Logf("read after verification: %v", err)
	if n := chunksOnDisk(t, dir, cs, dg, int64(len(data))); n != 0 {
		t.Fatalf("%d chunks of the corrupt blob are left", n)
	}
	if disk.Used() != 0 || disk.Verified(dg) || disk.Has(cache.Key{Digest: dg, Index: 0}) {
		t.Fatalf("disk cache: %d bytes used, verified %v; want 0, false", disk.Used(), disk.Verified(dg))
	}
	// Every part of it fails now, whatever the read, and nothing is
	// fetched again.
	before := src.requests.Load()
	for _, off := range []int64{0, flipAt, int64(len(data)) - 1} {
		if _, err := b.ReadAt(context.Background(), make([]byte, 1), off); !errors.Is(err, ErrCorruptBlob) {
			t.Fatalf("read at %d: %v, want ErrCorruptBlob", off, err)
		}
	}
	b.Prefetch(0, int64(len(data)))
	if _, err := readAll(t, b, cs); !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("full read: %v, want ErrCorruptBlob", err)
	}
	if n := src.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests for a blob known to be corrupt", n)
	}
	if n := chunksOnDisk(t, dir, cs, dg, int64(len(data))); n != 0 {
		t.Fatalf("the corrupt blob came back on disk: %d chunks", n)
	}
	// Only that blob is condemned: another blob of the same Fetcher reads,
	// fills the disk and verifies fine.
	gb := f.Blob(gdg, int64(len(good)))
	got, err := readAll(t, gb, 10_000)
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("another blob: %v, equal %v", err, bytes.Equal(got, good))
	}
	waitFor(t, "the good blob to be verified", func() bool { return disk.Verified(gdg) })

	// A new Fetcher (a remount) over the same directory fetches the
	// corrupt blob afresh rather than serving anything left of it.
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	disk2 := openDisk(t, dir, cs, 64<<20)
	src.bad = ""
	b2 := diskFetcher(t, src, disk2, cs).Blob(dg, int64(len(data)))
	got, err = readAll(t, b2, 100_000)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after a remount with a fixed source: %v, equal %v", err, bytes.Equal(got, data))
	}
	waitFor(t, "the refetched blob to be verified", func() bool { return disk2.Verified(dg) })
}
