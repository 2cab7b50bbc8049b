package lazy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestSharedDiskFetchesEachChunkOnce: four Fetchers, each with its own
// Disk on one directory (as four processes would be), read the same blob
// at the same time, with read-ahead. Between them their sources serve the
// blob exactly once.
func TestSharedDiskFetchesEachChunkOnce(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(30, 40*cs+99)
	dg := digest.FromBytes(data)
	var srcs []*memSource
	var wg sync.WaitGroup
	for p := range 4 {
		src := &memSource{data: data, delay: 3 * time.Millisecond}
		srcs = append(srcs, src)
		f := diskFetcher(t, src, openDisk(t, dir, cs, 64<<20), cs)
		b := f.Blob(dg, int64(len(data)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each starts at its own place, and half of them read ahead.
			start := int64(p) * int64(len(data)) / 4
			if p%2 == 1 {
				b.Prefetch(start, 8*cs)
			}
			buf := make([]byte, 50_000)
			for off := start; off < start+int64(len(data)); off += int64(len(buf)) {
				o := off % int64(len(data))
				n, err := b.ReadAt(context.Background(), buf[:min(int64(len(buf)), int64(len(data))-o)], o)
				if err != nil || !bytes.Equal(buf[:n], data[o:o+int64(n)]) {
					t.Errorf("reader %d at %d: wrong bytes (%v)", p, o, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	for p, s := range srcs {
		t.Logf("process %d fetched %d bytes in %d requests", p, s.bytes.Load(), s.requests.Load())
		total += s.bytes.Load()
	}
	if total != int64(len(data)) {
		t.Errorf("the processes fetched %d bytes between them, want the blob's %d exactly once", total, len(data))
	}
}

// TestSharedDiskStuckHolder: a chunk another process claimed and never
// delivers (stopped, not dead) holds a reader up for a quarter of the
// fetch timeout at most: then the reader fetches it itself.
func TestSharedDiskStuckHolder(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(31, 4*cs)
	dg := digest.FromBytes(data)
	holder := openDisk(t, dir, cs, 64<<20)
	k := cache.Key{Digest: dg, Index: 1}
	if r, err := holder.Claim(k, int64(len(data))); err != nil || r != cache.Claimed {
		t.Fatalf("claim: %v, %v", r, err)
	}
	src := &memSource{data: data}
	f := shortTimeoutFetcher(t, src, dir, cs)
	p := make([]byte, 10)
	start := time.Now()
	if _, err := f.Blob(dg, int64(len(data))).ReadAt(context.Background(), p, cs+5); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, data[cs+5:cs+15]) {
		t.Fatal("wrong bytes")
	}
	t.Logf("read of a chunk held by a stuck process took %s", time.Since(start))
	if src.bytes.Load() != cs {
		t.Errorf("fetched %d bytes, want the one chunk (%d)", src.bytes.Load(), cs)
	}
	// A holder that dies (its files closed) frees the chunk at once.
	k2 := cache.Key{Digest: dg, Index: 2}
	if r, err := holder.Claim(k2, int64(len(data))); err != nil || r != cache.Claimed {
		t.Fatalf("claim: %v, %v", r, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		holder.Close()
	}()
	if _, err := f.Blob(dg, int64(len(data))).ReadAt(context.Background(), p, 2*cs); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, data[2*cs:2*cs+10]) {
		t.Fatal("wrong bytes")
	}
}

// TestSharedDiskUnreadableChunk: a chunk the disk cache says is present
// but cannot be read (its data file cut short) is fetched from the source
// after a quarter of the fetch timeout, not waited for for ever.
func TestSharedDiskUnreadableChunk(t *testing.T) {
	const cs = 64 << 10
	dir := t.TempDir()
	data := fixture.RandomBytes(32, 4*cs)
	dg := digest.FromBytes(data)
	writer := openDisk(t, dir, cs, 64<<20)
	if err := writer.Add(cache.Key{Digest: dg, Index: 2}, int64(len(data)), data[2*cs:3*cs]); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "v2", "*", "sha256", dg.Encoded(), "data"))
	if err != nil || len(files) != 1 {
		t.Fatalf("data file: %v, %v", files, err)
	}
	if err := os.Truncate(files[0], 0); err != nil {
		t.Fatal(err)
	}
	src := &memSource{data: data}
	f := shortTimeoutFetcher(t, src, dir, cs)
	p := make([]byte, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.Blob(dg, int64(len(data))).ReadAt(ctx, p, 2*cs+7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, data[2*cs+7:2*cs+107]) {
		t.Fatal("wrong bytes")
	}
}

// shortTimeoutFetcher is a Fetcher over its own Disk on dir, with a fetch
// timeout of 2 s (so a quarter of it, the give-up time for a chunk another
// holds, is short), closed at the end of the test.
func shortTimeoutFetcher(t *testing.T, src Source, dir string, cs int64) *Fetcher {
	t.Helper()
	mem, err := cache.NewMemory(64<<20, cs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, Options{ChunkSize: cs, Disk: openDisk(t, dir, cs, 64<<20), FetchTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}
