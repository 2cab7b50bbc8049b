package lazy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// memSource serves a blob from memory and counts range requests. A real
// registry is used in the blobstore and end-to-end tests; this source exists
// to count and to delay precisely.
type memSource struct {
	data     []byte
	requests atomic.Int64
	bytes    atomic.Int64
	delay    time.Duration
	fail     error
}

func (m *memSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	m.requests.Add(1)
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.fail != nil {
		return m.fail
	}
	return serveParts(m.data, parts, off, done, &m.bytes)
}

// StreamBlob serves the whole blob; the tests of servers that ignore Range
// have their own source (noRangeSource).
func (m *memSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	m.requests.Add(1)
	m.bytes.Add(int64(len(m.data)))
	return fn(bytes.NewReader(m.data), int64(len(m.data)))
}

// serveParts fills parts from data at off, as blobstore.Store.ReadParts
// does: a part is done only when whole, and a blob that ends inside the
// range is a shortBlobError.
func serveParts(data []byte, parts [][]byte, off int64, done func(i int), sent *atomic.Int64) error {
	for i, p := range parts {
		if off+int64(len(p)) > int64(len(data)) {
			return shortBlobError(len(data))
		}
		copy(p, data[off:])
		off += int64(len(p))
		sent.Add(int64(len(p)))
		done(i)
	}
	return nil
}

// shortBlobError is a source's answer for a range past the blob's end.
type shortBlobError int64

func (e shortBlobError) Error() string   { return fmt.Sprintf("blob ends at %d", int64(e)) }
func (e shortBlobError) BlobSize() int64 { return int64(e) }

func newTestFetcher(t testing.TB, src Source, chunkSize int64) *Fetcher {
	t.Helper()
	return fetcherWith(t, src, Options{ChunkSize: chunkSize})
}

// fetcherWith makes a Fetcher over a fresh memory cache, closed at the end
// of the test.
func fetcherWith(t testing.TB, src Source, opts Options) *Fetcher {
	t.Helper()
	mem, err := cache.NewMemory(64<<20, opts.ChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func TestConcurrentReadersShareOneFetch(t *testing.T) {
	data := fixture.RandomBytes(1, 3<<20)
	src := &memSource{data: data, delay: 50 * time.Millisecond}
	f := newTestFetcher(t, src, 1<<20)
	b := f.Blob(digest.FromBytes(data), int64(len(data)))

	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 32)
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			off := int64(1<<20 + g*1000)
			p := make([]byte, 4096)
			if _, err := b.ReadAt(context.Background(), p, off); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(p, data[off:off+4096]) {
				errs <- errors.New("wrong bytes")
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := src.requests.Load(); got != 1 {
		t.Fatalf("32 readers of one chunk caused %d range requests, want 1", got)
	}
}

func TestReadAt(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 10*cs+123)
	size := int64(len(data))
	tests := []struct {
		name     string
		off      int64
		n        int
		wantN    int
		wantEOF  bool
		maxBytes int64 // fetched from the source, cold
	}{
		{"start", 0, 100, 100, false, cs},
		{"middle of a chunk", 5*cs + 10, 100, 100, false, cs},
		{"across a boundary", 3*cs - 50, 100, 100, false, 2 * cs},
		{"several chunks", cs / 2, 4 * cs, 4 * cs, false, 5 * cs},
		{"last byte", size - 1, 1, 1, false, 123},
		{"crossing the end", size - 10, 100, 10, true, 123},
		{"at the end", size, 10, 0, true, 0},
		{"beyond the end", size + 100, 10, 0, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &memSource{data: data}
			b := newTestFetcher(t, src, cs).Blob(digest.FromBytes(data), size)
			p := make([]byte, tc.n)
			n, err := b.ReadAt(context.Background(), p, tc.off)
			if n != tc.wantN {
				t.Fatalf("n = %d, want %d", n, tc.wantN)
			}
			if tc.wantEOF != errors.Is(err, io.EOF) || (!tc.wantEOF && err != nil) {
				t.Fatalf("err = %v, want EOF: %v", err, tc.wantEOF)
			}
			if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
				t.Fatal("wrong bytes")
			}
			if got := src.bytes.Load(); got > tc.maxBytes {
				t.Fatalf("fetched %d bytes, want at most %d", got, tc.maxBytes)
			}
			// A second read is served from the cache.
			before := src.requests.Load()
			if _, err := b.ReadAt(context.Background(), p, tc.off); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if src.requests.Load() != before {
				t.Fatal("a warm read went to the source")
			}
		})
	}
}

func TestInterruptedReaderDoesNotFailOthers(t *testing.T) {
	data := fixture.RandomBytes(1, 1<<20)
	src := &memSource{data: data, delay: 200 * time.Millisecond}
	b := newTestFetcher(t, src, 1<<20).Blob(digest.FromBytes(data), int64(len(data)))

	ctx, cancel := context.WithCancel(context.Background())
	interrupted := make(chan error, 1)
	go func() {
		_, err := b.ReadAt(ctx, make([]byte, 10), 0)
		interrupted <- err
	}()
	time.Sleep(20 * time.Millisecond)
	other := make(chan error, 1)
	go func() {
		p := make([]byte, 10)
		_, err := b.ReadAt(context.Background(), p, 0)
		if err == nil && !bytes.Equal(p, data[:10]) {
			err = errors.New("wrong bytes")
		}
		other <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-interrupted:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted reader got %v, want context.Canceled", err)
		}
	case <-time.After(100 * time.Millisecond):
		t.Fatal("interrupted reader kept waiting for the fetch")
	}
	if err := <-other; err != nil {
		t.Fatalf("the other reader failed: %v", err)
	}
	if got := src.requests.Load(); got != 1 {
		t.Fatalf("%d requests, want 1", got)
	}
}

// TestShortBlob: a blob that ends before its descriptor says is an
// ErrBlobSize, never a short read.
func TestShortBlob(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 3*cs+10)
	b := newTestFetcher(t, &memSource{data: data}, cs).Blob(digest.FromBytes(data), 5*cs)
	n, err := b.ReadAt(context.Background(), make([]byte, 100), 3*cs+5)
	if n != 0 || !errors.Is(err, ErrBlobSize) {
		t.Fatalf("read across the real end: n %d, err %v; want 0 and ErrBlobSize", n, err)
	}
}

// waitIdle waits until no chunk of f is in flight: every fetch started
// has landed or failed.
func waitIdle(t *testing.T, f *Fetcher) {
	t.Helper()
	waitFor(t, "fetches in flight to end", func() bool {
		f.flights.mu.Lock()
		defer f.flights.mu.Unlock()
		return len(f.flights.m) == 0
	})
}

func TestFetchErrorIsReturnedAndNotCached(t *testing.T) {
	data := fixture.RandomBytes(1, 8192)
	src := &memSource{data: data, fail: errors.New("boom")}
	b := newTestFetcher(t, src, 4096).Blob(digest.FromBytes(data), int64(len(data)))
	if _, err := b.ReadAt(context.Background(), make([]byte, 10), 0); err == nil {
		t.Fatal("read succeeded with a failing source")
	}
	src.fail = nil
	p := make([]byte, 10)
	if _, err := b.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatalf("read after the source recovered: %v", err)
	}
	if !bytes.Equal(p, data[:10]) {
		t.Fatal("wrong bytes after recovery")
	}
}

func BenchmarkReadAtHit(b *testing.B) {
	data := fixture.RandomBytes(1, 4<<20)
	blob := newTestFetcher(b, &memSource{data: data}, 1<<20).Blob(digest.FromBytes(data), int64(len(data)))
	p := make([]byte, 128<<10)
	if _, err := blob.ReadAt(context.Background(), make([]byte, len(data)), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := blob.ReadAt(context.Background(), p, int64(i%32)*int64(len(p))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadAtMiss(b *testing.B) {
	data := fixture.RandomBytes(1, 4<<20)
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		blob := newTestFetcher(b, &memSource{data: data}, 1<<20).Blob(digest.FromBytes(data), int64(len(data)))
		b.StartTimer()
		if _, err := blob.ReadAt(context.Background(), p, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
