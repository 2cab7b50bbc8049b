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
	"github.com/osimagefs/osimagefs/test/fixture"
)

// gateSource serves blobs from memory; requests for the blob held stay
// unanswered until their context ends (or the test ends): a registry
// that has gone slow for some blobs.
type gateSource struct {
	blobs    map[digest.Digest][]byte
	held     digest.Digest
	stuck    atomic.Int64 // requests for the held blob, answered or not
	requests atomic.Int64
	delay    time.Duration // before each answer
	stall    int64         // answer only requests after the first stall ones
	release  chan struct{}
}

func (s *gateSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	n := s.requests.Add(1)
	if d == s.held {
		s.stuck.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.release:
		}
	}
	if n <= s.stall {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	var sent atomic.Int64
	return serveParts(s.blobs[d], parts, off, done, &sent)
}

func (s *gateSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	return errors.New("gateSource serves ranges only")
}

// TestDemandReadWhilePrefetchHoldsSlots: prefetch runs that never end hold
// every request slot they may; a reader of another blob is served at once.
func TestDemandReadWhilePrefetchHoldsSlots(t *testing.T) {
	const cs = 4096
	slow, fast := fixture.RandomBytes(1, 32*cs), fixture.RandomBytes(1, 4*cs)[1:]
	sd, fd := digest.FromBytes(slow), digest.FromBytes(fast)
	src := &gateSource{blobs: map[digest.Digest][]byte{sd: slow, fd: fast}, held: sd, release: make(chan struct{})}
	t.Cleanup(func() { close(src.release) })
	f := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 4, MaxRequest: cs})
	f.Blob(sd, int64(len(slow))).Prefetch(0, int64(len(slow))) // 32 one-chunk runs
	waitFor(t, "prefetch runs to hold their slots", func() bool { return src.stuck.Load() >= 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := make([]byte, 100)
	if _, err := f.Blob(fd, int64(len(fast))).ReadAt(ctx, p, 2*cs); err != nil {
		t.Fatalf("a demand read behind stuck prefetch runs: %v", err)
	}
	if !bytes.Equal(p, fast[2*cs:2*cs+100]) {
		t.Fatal("wrong bytes")
	}
}

// TestWaitForSlotIsNotPartOfTheDeadline: with one request slot, a fetch
// that waits for it behind a slow one still gets its whole FetchTimeout.
func TestWaitForSlotIsNotPartOfTheDeadline(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 4*cs)
	d := digest.FromBytes(data)
	src := &gateSource{blobs: map[digest.Digest][]byte{d: data}, delay: time.Second}
	f := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 1, FetchTimeout: 1600 * time.Millisecond})
	b := f.Blob(d, int64(len(data)))
	errs := make(chan error, 2)
	for _, off := range []int64{0, 2 * cs} { // two chunks: two fetches, one after the other
		go func() {
			p := make([]byte, 10)
			_, err := b.ReadAt(context.Background(), p, off)
			if err == nil && !bytes.Equal(p, data[off:off+10]) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a fetch that waited 1 s for its slot, then took 1 s, failed its 1.6 s deadline: %v", err)
		}
	}
}

// TestLateJoinerGetsItsOwnDeadline: a reader that joins a fetch shortly
// before that fetch fails at its deadline is not failed with it: it has
// time left, and a fresh fetch serves it.
func TestLateJoinerGetsItsOwnDeadline(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 2*cs)
	d := digest.FromBytes(data)
	src := &gateSource{blobs: map[digest.Digest][]byte{d: data}, stall: 1}
	f := fetcherWith(t, src, Options{ChunkSize: cs, FetchTimeout: time.Second})
	b := f.Blob(d, int64(len(data)))

	first := make(chan error, 1)
	go func() {
		_, err := b.ReadAt(context.Background(), make([]byte, 10), 0)
		first <- err
	}()
	waitFor(t, "the first fetch to start", func() bool { return src.requests.Load() == 1 })
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-first:
		t.Fatalf("the first fetch ended before the second reader joined it (%v): the machine is too slow for this test", err)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := make([]byte, 10)
	if _, err := b.ReadAt(ctx, p, 0); err != nil {
		t.Fatalf("a reader that joined 700 ms before the fetch's deadline failed with it: %v", err)
	}
	if !bytes.Equal(p, data[:10]) {
		t.Fatal("wrong bytes")
	}
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the reader that started the stalled fetch got %v, want its deadline", err)
	}
}

// TestRereadAfterGiveUpWaitsShortly: a reader that asks for a chunk whose
// fetch another reader gave up on at its deadline a moment ago (what the
// kernel does by itself after a failed read) fails after a short wait,
// not after a second whole deadline.
func TestRereadAfterGiveUpWaitsShortly(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 2*cs)
	d := digest.FromBytes(data)
	src := &gateSource{blobs: map[digest.Digest][]byte{d: data}, stall: 1 << 30}
	b := fetcherWith(t, src, Options{ChunkSize: cs, FetchTimeout: 30 * time.Second}).Blob(d, int64(len(data)))

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := b.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first reader: %v, want its deadline", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	start := time.Now()
	_, err := b.ReadAt(ctx2, make([]byte, 10), 100)
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("the re-read: %v, want a short wait that names why", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the re-read waited %s", took)
	}
	if n := src.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want the one stalled fetch", n)
	}
}

// failThenStallSource fails its first failing requests after a pause and
// leaves every later one unanswered until its context ends.
type failThenStallSource struct {
	memSource
	failing int64
	pause   time.Duration
}

func (s *failThenStallSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	if s.requests.Add(1) <= s.failing {
		time.Sleep(s.pause)
		return errors.New("connection reset")
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestRereadAfterGiveUpAndFailedFetch: the reader gave up at its deadline,
// then the fetch failed; the kernel's re-read a moment later starts a
// fresh fetch but waits only shortly for it, not a whole deadline.
func TestRereadAfterGiveUpAndFailedFetch(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 2*cs)
	d := digest.FromBytes(data)
	src := &failThenStallSource{memSource: memSource{data: data}, failing: 2, pause: 150 * time.Millisecond}
	b := fetcherWith(t, src, Options{ChunkSize: cs, FetchTimeout: 30 * time.Second}).Blob(d, int64(len(data)))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.ReadAt(ctx, make([]byte, 2*cs), 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first reader: %v, want its deadline", err)
	}
	waitFor(t, "the first fetches to fail", func() bool { return !b.f.flights.has(cache.Key{Digest: d, Index: 1}) })
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	start := time.Now()
	_, err := b.ReadAt(ctx2, make([]byte, 10), cs+100)
	if err == nil || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("the re-read of the read's second chunk: %v, want a short wait that names why", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the re-read waited %s", took)
	}
	if n := src.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want the two failed fetches and a fresh one", n)
	}
}
