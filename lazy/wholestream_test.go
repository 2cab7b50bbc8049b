package lazy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// errIgnoresRange is noRangeSource's answer past byte 0, recognised as
// blobstore.RangeIgnoredError is.
type errIgnoresRange struct{}

func (errIgnoresRange) Error() string      { return "server ignores Range" }
func (errIgnoresRange) RangeIgnored() bool { return true }

// noRangeSource is a server that ignores Range: a read from byte 0 gets
// the blob's start, a read past it fails at once (as blobstore does once
// it knows the host), and StreamBlob sends the blob from byte 0, counting
// the bytes sent.
type noRangeSource struct {
	data    []byte
	sent    atomic.Int64 // body bytes read by the streams
	streams atomic.Int64 // StreamBlob calls
	// hold, if set, is closed to let the streams send their bodies.
	hold chan struct{}
	// cutAt, if above 0, cuts the first body after that many bytes; the
	// stream is then retried once, from byte 0.
	cutAt int64
}

func (s *noRangeSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	if off > 0 {
		return errIgnoresRange{}
	}
	for i, p := range parts {
		off += int64(copy(p, s.data[off:]))
		s.sent.Add(int64(len(p)))
		done(i)
	}
	return nil
}

func (s *noRangeSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	s.streams.Add(1)
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	var err error
	for attempt := range 2 {
		body := io.Reader(bytes.NewReader(s.data))
		if attempt == 0 && s.cutAt > 0 {
			body = io.MultiReader(io.LimitReader(body, s.cutAt), errReader{io.ErrUnexpectedEOF})
		}
		err = fn(&countingReader{r: body, n: &s.sent}, int64(len(s.data)))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
	}
	return err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// waitForWaiters waits until n flights wait for the running stream of d,
// or with n = -1 until no stream of d runs.
func waitForWaiters(t *testing.T, f *Fetcher, d digest.Digest, n int) {
	t.Helper()
	waiters := func() int {
		f.streams.mu.Lock()
		defer f.streams.mu.Unlock()
		if s := f.streams.m[d]; s != nil {
			return len(s.waiting)
		}
		return -1
	}
	ok := func() bool {
		if n < 0 {
			return waiters() < 0
		}
		return waiters() >= n
	}
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d flights wait for the stream, want %d", waiters(), n)
		}
	}
}

// TestRangeIgnoredOneStream: eight readers of chunks near the end of a
// blob whose server ignores Range share one stream of it from byte 0:
// about one blob crosses the wire (not eight), every reader gets the right
// bytes, and every chunk that passed is cached (each stored once). The
// stream goes on a little past the last chunk asked for (two MaxRequests
// here: to the blob's end), for the reads that follow.
func TestRangeIgnoredOneStream(t *testing.T) {
	const cs, chunks = 64 << 10, 64
	data := fixture.RandomBytes(1, cs*chunks-1000)
	size := int64(len(data))
	tests := []struct {
		name  string
		cutAt int64 // the first body is cut there, and the stream retried from byte 0
	}{
		{"one pass", 0},
		{"a cut body, retried", 20*cs + 77},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &noRangeSource{data: data, hold: make(chan struct{}), cutAt: tc.cutAt}
			mem, err := cache.NewMemory(2*size, cs)
			if err != nil {
				t.Fatal(err)
			}
			var stored atomic.Int64
			f, err := NewFetcher(src, mem, Options{ChunkSize: cs, FetchTimeout: 30 * time.Second, OnFetch: func(digest.Digest, int64) { stored.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d := digest.FromBytes(data)
			b := f.Blob(d, size)

			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for r := range 8 {
				wg.Go(func() {
					off := int64(62-r)*cs + 100 // chunks 55..62
					p := make([]byte, 5000)
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					if _, err := b.ReadAt(ctx, p, off); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(p, data[off:off+int64(len(p))]) {
						errs <- errors.New("wrong bytes")
					}
				})
			}
			// Let the stream go once every reader waits for it, so that
			// the test does not depend on how goroutines are scheduled.
			waitForWaiters(t, f, d, 8)
			close(src.hold)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitForWaiters(t, f, d, -1) // the stream has ended
			if n := src.streams.Load(); n != 1 {
				t.Fatalf("%d streams, want 1", n)
			}
			// The whole blob once, plus the cut part.
			want := size + tc.cutAt
			if got := src.sent.Load(); got != want {
				t.Fatalf("%d bytes streamed, want %d (one blob is %d)", got, want, size)
			}
			for i := range int64(chunks) {
				if _, ok := mem.Get(cache.Key{Digest: d, Index: i}); !ok {
					t.Errorf("chunk %d passed but is not cached", i)
				}
			}
			if n := stored.Load(); n != chunks {
				t.Errorf("%d chunks stored, want %d, each once", n, chunks)
			}
		})
	}
}

// TestRangeIgnoredLateReaders: a stream goes on past the chunk asked for
// (here to the blob's end), so that readers after it find their chunks
// cached; a reader of a chunk that is in no cache any more once the stream
// has ended starts a new one.
func TestRangeIgnoredLateReaders(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(1, cs*32)
	size := int64(len(data))
	src := &noRangeSource{data: data, hold: make(chan struct{})}
	mem, err := cache.NewMemory(8*cs, cs) // holds the last 8 chunks passed
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFetcher(src, mem, Options{ChunkSize: cs, FetchTimeout: 30 * time.Second, MaxRequest: 4 * cs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	d := digest.FromBytes(data)
	b := f.Blob(d, size)
	read := func(off int64) error {
		p := make([]byte, 100)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := b.ReadAt(ctx, p, off); err != nil {
			return err
		}
		if !bytes.Equal(p, data[off:off+100]) {
			return errors.New("wrong bytes")
		}
		return nil
	}
	first := make(chan error, 1)
	go func() { first <- read(20*cs + 5) }()
	waitForWaiters(t, f, d, 1)
	close(src.hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitForWaiters(t, f, d, -1) // the stream has ended
	if err := read(30*cs + 7); err != nil {
		t.Fatal(err)
	}
	if n, sent := src.streams.Load(), src.sent.Load(); n != 1 || sent != size {
		t.Fatalf("%d streams, %d bytes for a chunk past the one asked for; want 1 and the blob, %d", n, sent, size)
	}
	if err := read(3 * cs); err != nil { // evicted from memory: a new stream
		t.Fatal(err)
	}
	waitForWaiters(t, f, d, -1)
	if n, sent := src.streams.Load(), src.sent.Load(); n != 2 || sent != 2*size {
		t.Fatalf("%d streams, %d bytes; want 2 and %d", n, sent, 2*size)
	}
	// Byte 0 is a plain read: the server's 200 from byte 0 is the range.
	src.sent.Store(0)
	fresh := newStreamFetcher(t, src, cs, 30*time.Second).Blob(d, size)
	p := make([]byte, 10)
	if _, err := fresh.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:10]) || src.streams.Load() != 2 {
		t.Fatalf("read at 0: %v, %d streams", err, src.streams.Load())
	}
}

// TestRangeIgnoredStreamFails: a stream that never sends fails its
// flights at FetchTimeout, and Close fails them at once; neither hangs.
func TestRangeIgnoredStreamFails(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(1, cs*8)
	tests := []struct {
		name    string
		timeout time.Duration
		close   bool
		want    error
	}{
		{"fetch timeout", 300 * time.Millisecond, false, context.DeadlineExceeded},
		{"close", time.Minute, true, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &noRangeSource{data: data, hold: make(chan struct{})} // never released
			mem, err := cache.NewMemory(1<<20, cs)
			if err != nil {
				t.Fatal(err)
			}
			f, err := NewFetcher(src, mem, Options{ChunkSize: cs, FetchTimeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			d := digest.FromBytes(data)
			done := make(chan error, 1)
			go func() {
				_, err := f.Blob(d, int64(len(data))).ReadAt(context.Background(), make([]byte, 10), 5*cs)
				done <- err
			}()
			waitForWaiters(t, f, d, 1)
			if tc.close {
				f.Close()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				t.Logf("failed with: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the read hangs")
			}
		})
	}
}

func newStreamFetcher(t *testing.T, src *noRangeSource, cs int64, timeout time.Duration) *Fetcher {
	t.Helper()
	return fetcherWith(t, src, Options{ChunkSize: cs, FetchTimeout: timeout})
}

// TestRangeIgnoredFillOneStream: filling a blob whose server ignores Range,
// one MaxRequest after another, takes one stream of it, not one per
// stretch from byte 0.
func TestRangeIgnoredFillOneStream(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(1, cs*64-5)
	src := &noRangeSource{data: data, hold: make(chan struct{})}
	close(src.hold)
	f := newStreamFetcher(t, src, cs, 30*time.Second)
	f.opts.MaxRequest = 4 * cs
	b := f.Blob(digest.FromBytes(data), int64(len(data)))
	if err := b.Fill(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	// The first stretch is a plain read from byte 0; the stream that serves
	// the rest passes it again.
	if n, sent, want := src.streams.Load(), src.sent.Load(), int64(len(data)+4*cs); n != 1 || sent != want {
		t.Fatalf("%d streams, %d bytes, want 1 and %d", n, sent, want)
	}
	got, err := readAll(t, b, 100_000)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the fill: %v, equal %v", err, bytes.Equal(got, data))
	}
}

// TestStreamKeepsPassedChunksForLateFlights: a chunk that read-ahead had
// claimed when the stream passed it (its flight not yet handed to the
// stream) is kept for that flight, which lands from it after the stream
// ended, without a second stream from byte 0.
func TestStreamKeepsPassedChunksForLateFlights(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(9, 8*cs)
	d := digest.FromBytes(data)
	src := &noRangeSource{data: data}
	f := newTestFetcher(t, src, cs)
	b := f.Blob(d, int64(len(data)))

	late, ok := f.flights.tryClaim(cache.Key{Digest: d, Index: 5}, newHurry())
	if !ok {
		t.Fatal("claim chunk 5")
	}
	p := make([]byte, 10)
	if _, err := b.ReadAt(context.Background(), p, 7*cs); err != nil || !bytes.Equal(p, data[7*cs:7*cs+10]) {
		t.Fatalf("read of chunk 7: %v", err)
	}
	waitForWaiters(t, f, d, -1) // the stream has ended
	f.streamRun(d, int64(len(data)), 5, []*flight{late}, errIgnoresRange{})
	<-late.done
	if late.err != nil || !bytes.Equal(late.data, data[5*cs:6*cs]) {
		t.Fatalf("the late flight: %v, right bytes %v", late.err, bytes.Equal(late.data, data[5*cs:6*cs]))
	}
	waitForWaiters(t, f, d, -1)
	if n := src.streams.Load(); n != 1 {
		t.Fatalf("%d streams from byte 0, want 1", n)
	}
}
