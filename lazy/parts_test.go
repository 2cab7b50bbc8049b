package lazy

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// partSource serves a blob part by part, pausing between parts, and can
// fail after a number of parts: what a streamed range request looks like.
type partSource struct {
	memSource
	pause     time.Duration
	failAfter int // parts delivered before failing; 0 = never fail
	calls     atomic.Int64
}

func (s *partSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	s.calls.Add(1)
	for i, p := range parts {
		if s.failAfter > 0 && i == s.failAfter {
			return errors.New("connection reset")
		}
		if i > 0 {
			time.Sleep(s.pause)
		}
		copy(p, s.data[off:])
		off += int64(len(p))
		done(i)
	}
	return nil
}

// TestRunLandsChunksAsTheyArrive: a read of the first chunk of a prefetched
// run is served before the rest of the run has arrived.
func TestRunLandsChunksAsTheyArrive(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(1, 16*cs)
	src := &partSource{memSource: memSource{data: data}, pause: 50 * time.Millisecond}
	f := newTestFetcher(t, src, cs)
	f.opts.MaxRequest = 8 * cs
	b := f.Blob(digest.FromBytes(data), int64(len(data)))

	start := time.Now()
	b.Prefetch(0, 8*cs)
	p := make([]byte, 100)
	if _, err := b.ReadAt(context.Background(), p, 10); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > 200*time.Millisecond {
		t.Fatalf("the first chunk took %s: it waited for the whole run (7 pauses of 50 ms)", waited)
	}
	if !bytes.Equal(p, data[10:110]) {
		t.Fatal("wrong bytes")
	}
	q := make([]byte, 8*cs)
	if _, err := b.ReadAt(context.Background(), q, 0); err != nil || !bytes.Equal(q, data[:8*cs]) {
		t.Fatalf("whole run: %v", err)
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("%d streamed requests for one run, want 1", got)
	}
	if got := src.requests.Load(); got != 0 {
		t.Fatalf("%d single-chunk requests, want 0: every chunk came with the run", got)
	}
}

// TestRunFailureKeepsDeliveredChunks: when the stream breaks, the chunks
// that arrived are served and cached; the rest fail for their waiters and
// are fetched again by the next read.
func TestRunFailureKeepsDeliveredChunks(t *testing.T) {
	const cs = 64 << 10
	data := fixture.RandomBytes(1, 8*cs)
	src := &partSource{memSource: memSource{data: data}, failAfter: 3}
	f := newTestFetcher(t, src, cs)
	f.opts.MaxRequest = 8 * cs
	b := f.Blob(digest.FromBytes(data), int64(len(data)))
	b.Prefetch(0, 8*cs)
	waitIdle(t, f) // the run has broken after three chunks
	p := make([]byte, 3*cs)
	if _, err := b.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:3*cs]) {
		t.Fatalf("delivered chunks: %v", err)
	}
	if got := src.calls.Load(); got != 1 {
		t.Fatalf("the delivered chunks were fetched again (%d requests, want the broken one only)", got)
	}
	q := make([]byte, cs)
	if _, err := b.ReadAt(context.Background(), q, 5*cs); err != nil || !bytes.Equal(q, data[5*cs:6*cs]) {
		t.Fatalf("chunk after the break: %v", err)
	}
	if got := src.calls.Load() - 1; got != 1 {
		t.Fatalf("the chunk after the break took %d requests, want 1", got)
	}
}
