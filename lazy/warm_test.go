package lazy

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestWarmFillsDiskOnceAndVerifies: Warm fetches each chunk not on disk
// exactly once, in runs of MaxRequest bytes, and returns with the blob
// complete and verified; the chunks an earlier read cached are not fetched
// again, and a second Warm, in a new Fetcher over the same directory,
// fetches nothing.
func TestWarmFillsDiskOnceAndVerifies(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(3, 40*cs+123)
	dg := digest.FromBytes(data)
	src := &memSource{data: data}
	disk := openDisk(t, dir, cs, 64<<20)
	mem, err := cache.NewMemory(4*cs, cs) // smaller than the blob: the disk must hold it
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, Options{ChunkSize: cs, MaxRequest: 4 * cs, Parallel: 3, Disk: disk})
	if err != nil {
		t.Fatal(err)
	}
	b := f.Blob(dg, int64(len(data)))

	// A reader got chunks 5 and 6 first.
	if _, err := b.ReadAt(context.Background(), make([]byte, 2*cs), 5*cs); err != nil {
		t.Fatal(err)
	}
	f.diskq.wait()
	src.bytes.Store(0)
	if err := b.Warm(context.Background()); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	if got, want := src.bytes.Load(), int64(len(data))-2*cs; got != want {
		t.Fatalf("Warm fetched %d bytes, want %d (all but the 2 chunks cached)", got, want)
	}
	if !disk.Verified(dg) {
		t.Fatal("the blob is not verified when Warm returns")
	}
	for i := int64(0); i < 41; i++ {
		if !disk.Has(cache.Key{Digest: dg, Index: i}) {
			t.Fatalf("chunk %d is not on disk when Warm returns", i)
		}
	}
	f.Close()
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}

	disk2 := openDisk(t, dir, cs, 64<<20)
	src2 := &memSource{data: data}
	f2 := diskFetcher(t, src2, disk2, cs)
	b2 := f2.Blob(dg, int64(len(data)))
	if err := b2.Warm(context.Background()); err != nil {
		t.Fatalf("second Warm: %v", err)
	}
	if n := src2.requests.Load(); n != 0 {
		t.Fatalf("the second Warm made %d requests, want 0", n)
	}
	got, err := readAll(t, b2, 100_000)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after Warm: %v, equal %v", err, bytes.Equal(got, data))
	}
	if n := src2.requests.Load(); n != 0 {
		t.Fatalf("reading the warmed blob made %d requests, want 0", n)
	}
}

// TestWarmReportsCorruptBlob: a blob whose bytes do not match its digest
// fails Warm with ErrCorruptBlob naming it, and leaves nothing on disk.
func TestWarmReportsCorruptBlob(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(4, 9*cs+7)
	dg := digest.FromBytes(data)
	src := &flipSource{blobs: map[digest.Digest][]byte{dg: data}, bad: dg, flipAt: 2*cs + 1}
	disk := openDisk(t, t.TempDir(), cs, 64<<20)
	f := diskFetcher(t, src, disk, cs)
	err := f.Blob(dg, int64(len(data))).Warm(context.Background())
	if !errors.Is(err, ErrCorruptBlob) {
		t.Fatalf("Warm of a corrupt blob: %v, want ErrCorruptBlob", err)
	}
	if !strings.Contains(err.Error(), dg.String()) {
		t.Fatalf("error %q does not name the blob", err)
	}
	if disk.Used() != 0 || disk.Verified(dg) {
		t.Fatalf("after a failed verification the disk holds %d bytes, verified %v", disk.Used(), disk.Verified(dg))
	}
}

// TestWarmStopsWhenCancelled: Warm returns when its context ends, even
// with fetches in flight, and the chunks fetched before are on disk after
// Close.
func TestWarmStopsWhenCancelled(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(5, 16*cs)
	dg := digest.FromBytes(data)
	src := &gatedSource{memSource: memSource{data: data}, gate: make(chan struct{})}
	disk := openDisk(t, t.TempDir(), cs, 64<<20)
	mem, err := cache.NewMemory(64<<20, cs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, Options{ChunkSize: cs, MaxRequest: 16 * cs, Parallel: 1, Disk: disk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Blob(dg, int64(len(data))).Warm(ctx) }()
	// Three chunks arrive, then the source stalls.
	for range 3 {
		src.gate <- struct{}{}
	}
	waitFor(t, "three chunks in memory", func() bool {
		_, ok := mem.Get(cache.Key{Digest: dg, Index: 2})
		return ok
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Warm after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Warm did not return after its context was cancelled")
	}
	f.Close()
	for i := int64(0); i < 3; i++ {
		if !disk.Has(cache.Key{Digest: dg, Index: i}) {
			t.Fatalf("chunk %d, fetched before the cancel, is not on disk after Close", i)
		}
	}
	if disk.Verified(dg) {
		t.Fatal("a blob warmed in part is marked verified")
	}
}

// gatedSource delivers one part of a range each time its gate is sent to,
// until its context ends.
type gatedSource struct {
	memSource
	gate chan struct{}
}

func (s *gatedSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	for i, p := range parts {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		copy(p, s.data[off:])
		off += int64(len(p))
		done(i)
	}
	return nil
}

// TestWarmEmptyBlob: an empty blob has no chunk and nothing to fetch.
func TestWarmEmptyBlob(t *testing.T) {
	src := &memSource{}
	f := diskFetcher(t, src, openDisk(t, t.TempDir(), 64<<10, 64<<20), 64<<10)
	if err := f.Blob(digest.FromBytes(nil), 0).Warm(context.Background()); err != nil {
		t.Fatalf("Warm of an empty blob: %v", err)
	}
	if n := src.requests.Load(); n != 0 {
		t.Fatalf("%d requests for an empty blob", n)
	}
}
