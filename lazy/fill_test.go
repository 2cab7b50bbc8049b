package lazy

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// flightSource serves a blob from memory after a pause per request, and
// records how many requests were in flight at most, and how many were in
// flight while the first one was.
type flightSource struct {
	memSource
	mu          sync.Mutex
	inFlight    int
	most        int
	firstDone   bool
	besideFirst int // requests that started before the first one ended
}

func (s *flightSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	s.mu.Lock()
	first := s.requests.Load() == 0
	if !first && !s.firstDone {
		s.besideFirst++
	}
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	// The first request has ended once its last part is handed over: the
	// fill may start the next ones from that callback, before ReadParts
	// returns.
	return s.memSource.ReadParts(ctx, d, parts, off, func(i int) {
		if first && i == len(parts)-1 {
			s.mu.Lock()
			s.firstDone = true
			s.mu.Unlock()
		}
		done(i)
	})
}

// TestFillKeepsRequestsInFlight: a fill (prefetch) and a warm (fetch) of a
// blob keep up to Parallel requests of MaxRequest bytes in flight, after a
// first request alone, and fetch each byte once.
func TestFillKeepsRequestsInFlight(t *testing.T) {
	const cs, parallel = 4096, 4
	data := fixture.RandomBytes(7, 64*cs) // 16 requests of 4 chunks
	d := digest.FromBytes(data)
	for _, c := range []struct {
		name string
		run  func(b *Blob) error
	}{
		{"fill", func(b *Blob) error { return b.Fill(context.Background(), false) }},
		{"fill at low priority", func(b *Blob) error { return b.Fill(context.Background(), true) }},
		{"warm's fill", func(b *Blob) error { return b.fill(context.Background(), true, false) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &flightSource{memSource: memSource{data: data, delay: 20 * time.Millisecond}}
			f := fetcherWith(t, src, Options{ChunkSize: cs, MaxRequest: 4 * cs, Parallel: parallel})
			b := f.Blob(d, int64(len(data)))
			if err := c.run(b); err != nil {
				t.Fatal(err)
			}
			if n := src.requests.Load(); n != 16 {
				t.Errorf("%d requests, want 16 of 4 chunks each", n)
			}
			if n := src.bytes.Load(); n != int64(len(data)) {
				t.Errorf("%d bytes fetched, want the blob's %d once", n, len(data))
			}
			if src.besideFirst != 0 {
				t.Errorf("%d requests started while the first was in flight, want it alone", src.besideFirst)
			}
			// Background fills leave one slot to reads.
			want := parallel
			if c.name != "warm's fill" {
				want = parallel - 1
			}
			if src.most != want {
				t.Errorf("at most %d requests in flight, want %d", src.most, want)
			}
			p := make([]byte, len(data))
			if _, err := b.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data) {
				t.Fatalf("read after fill: %v, equal %v", err, bytes.Equal(p, data))
			}
			if n := src.requests.Load(); n != 16 {
				t.Errorf("the read after the fill made %d more requests", n-16)
			}
		})
	}
}
