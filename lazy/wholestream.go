package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
)

// A server that ignores Range answers every range request with the whole
// blob from byte 0, so a chunk far into a blob costs a stream of the blob
// up to it. The source then fails such reads with an error that says so
// (rangeIgnored), and their flights are handed to the blob's one stream: a
// pass over the blob from byte 0 that lands every chunk passing by in the
// caches and in the flights waiting for it.
//
// The stream runs to the furthest chunk ever waited for, then lingers (see
// streamLinger) so that a sequential reader or a fill asking for the next
// chunks a moment later finds it still running rather than starting again
// from byte 0. A flight whose chunk the stream has passed and that is in no
// cache waits for the next stream, which starts when the current one ends.
// Memory: one chunk buffer beyond what the caches keep.
//
// Lock order: streams.mu, then the caches' and flights' own locks.

// rangeIgnored is a source's error for a server that ignores Range
// (blobstore.RangeIgnoredError).
type rangeIgnored interface{ RangeIgnored() bool }

// BlobStreamer reads a whole blob from its first byte; blobstore.Store is
// one. fn gets the body and the size the server declared (-1 if unknown); when
// fn fails in a way a retry may cure, it is called again with a new body
// from byte 0.
type BlobStreamer interface {
	StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error
}

// streams is the table of whole-blob streams, one per blob at most.
type streams struct {
	mu sync.Mutex // guards m, recent and every stream's fields marked so
	m  map[digest.Digest]*stream
	// recent holds chunks that a stream passed while their flight was on
	// its way to a stream (claimed, by read-ahead, not waiting yet): the
	// caches may not keep them (the disk cache takes no chunk another
	// flight has claimed) until it arrives, maybe after the stream ended.
	// At most streamRecent bytes; a chunk whose flight is gone is dropped
	// when a stream ends.
	recent      map[cache.Key][]byte
	recentBytes int64
}

// takeRecentLocked returns and forgets the recent chunk k, if kept.
func (ss *streams) takeRecentLocked(k cache.Key) ([]byte, bool) {
	b, ok := ss.recent[k]
	if ok {
		delete(ss.recent, k)
		ss.recentBytes -= int64(len(b))
	}
	return b, ok
}

// stream is one pass over a blob from byte 0.
type stream struct {
	d    digest.Digest
	size int64
	why  error // the error that sent the first flight here, for messages

	ctx    context.Context // cancelled by Close, or when no chunk passes for FetchTimeout
	cancel context.CancelCauseFunc
	stall  *time.Timer // cancels ctx; reset whenever a chunk passes

	// Guarded by streams.mu.
	at       int64            // chunks before it have passed (written by the stream's goroutine only)
	stopped  bool             // it takes no more waiters
	target   int64            // the furthest chunk waited for: it runs at least past it
	lastWant time.Time        // when a flight last joined
	waiting  map[int64]waiter // the flights it lands, by chunk, all at or past at
	next     map[int64]waiter // the flights of chunks it has passed, for the next stream
}

// streamRecent bounds streams.recent, in bytes: what the requests in
// flight may hold (Parallel of MaxRequest), as read-ahead may have claimed
// that much ahead of the stream, and the disk cache does not take a chunk
// another flight has claimed.
func (f *Fetcher) streamRecent() int64 { return int64(f.opts.Parallel) * f.opts.MaxRequest }

// A stream goes on for streamLinger after the last flight joined it, by
// streamLingerBytes (or two MaxRequests) past the furthest chunk asked for
// at most: a sequential reader or a fill that asks for the next chunks a
// moment later finds it still running, and skips the chunks it passed
// meanwhile in the caches, however fast the stream is.
const (
	streamLinger      = 2 * time.Second
	streamLingerBytes = 64 << 20
)

// waiter is a flight waiting for a stream, until its deadline.
type waiter struct {
	fl       *flight
	deadline time.Time
}

// errStreamDeadline: the stream did not reach a chunk within FetchTimeout
// of the chunk's flight joining it.
var errStreamDeadline = fmt.Errorf("the stream did not reach it in time: %w", context.DeadlineExceeded)

// errStreamStalled: no chunk passed for FetchTimeout.
var errStreamStalled = fmt.Errorf("no data for the fetch timeout: %w", context.DeadlineExceeded)

// streamRun hands the flights of chunks first... of blob d (size bytes),
// whose range read failed with why (a rangeIgnored error), to the blob's
// stream, starting one if none is running.
func (f *Fetcher) streamRun(d digest.Digest, size, first int64, fls []*flight, why error) {
	type hit struct {
		k      cache.Key
		fl     *flight
		b      []byte
		stored bool // in the caches already (else it goes there now)
	}
	var hits []hit
	deadline := time.Now().Add(f.opts.FetchTimeout)
	f.streams.mu.Lock()
	s := f.streams.m[d]
	start := s == nil
	if start {
		s = f.newStreamLocked(d, size, why, nil)
	}
	for j, fl := range fls {
		i := first + int64(j)
		w := waiter{fl: fl, deadline: deadline}
		k := cache.Key{Digest: d, Index: i}
		if b, ok := f.streams.takeRecentLocked(k); ok {
			hits = append(hits, hit{k, fl, b, false})
			continue
		}
		switch {
		case !s.stopped && s.ctx.Err() == nil && i >= s.at:
			s.waiting[i] = w
			s.target = max(s.target, i)
			s.lastWant = time.Now()
		default:
			// Passed: it was put in the caches before it passed, unless
			// evicted since.
			if b, ok := f.cached(k, size); ok {
				hits = append(hits, hit{k, fl, b, true})
			} else {
				s.next[i] = w
			}
		}
	}
	if start && len(s.waiting) == 0 && len(s.next) == 0 {
		// Every flight was served from what an earlier stream passed:
		// nothing needs this one.
		delete(f.streams.m, d)
		s.stall.Stop()
		s.cancel(nil)
		start = false
	}
	f.streams.mu.Unlock()
	for _, h := range hits {
		if !h.stored {
			f.store(h.k, size, h.b, h.fl) // with the flight's claim, to disk
		}
		f.release(h.k, h.fl)
		f.flights.land(h.k, h.fl, h.b, nil)
	}
	if start {
		go f.runStream(s)
	}
}

// newStreamLocked registers a new stream of blob d, waited for by
// waiting (which may be nil). The caller starts it with runStream.
func (f *Fetcher) newStreamLocked(d digest.Digest, size int64, why error, waiting map[int64]waiter) *stream {
	if f.streams.m == nil {
		f.streams.m = map[digest.Digest]*stream{}
	}
	if waiting == nil {
		waiting = map[int64]waiter{}
	}
	ctx, cancel := context.WithCancelCause(f.ctx)
	s := &stream{d: d, size: size, why: why, ctx: ctx, cancel: cancel, waiting: waiting, next: map[int64]waiter{}, lastWant: time.Now()}
	for i := range waiting {
		s.target = max(s.target, i)
	}
	s.stall = time.AfterFunc(f.opts.FetchTimeout, func() { cancel(errStreamStalled) })
	f.streams.m[d] = s
	return s
}

// runStream runs stream s, and the streams of its blob that follow it.
func (f *Fetcher) runStream(s *stream) {
	for s != nil {
		s = f.endStream(s, f.passBlob(s))
	}
}

// endStream ends stream s, which stopped with err: it fails the flights
// left waiting for it and returns the next stream of its blob, if flights
// wait for one.
func (f *Fetcher) endStream(s *stream, err error) *stream {
	if cause := context.Cause(s.ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	s.stall.Stop()
	s.cancel(nil)
	f.log.Debug("whole-blob stream ended", "digest", s.d, "chunks passed", s.at, "err", err)
	if err == nil {
		err = errors.New("it ended before the chunk")
	}
	err = fmt.Errorf("stream %s from byte 0 (%v): %w", s.d, s.why, err)
	f.streams.mu.Lock()
	s.stopped = true
	for k, b := range f.streams.recent {
		if !f.flights.has(k) {
			delete(f.streams.recent, k)
			f.streams.recentBytes -= int64(len(b))
		}
	}
	left := s.waiting
	s.waiting = nil
	var next *stream
	if len(s.next) > 0 {
		first := int64(-1)
		for i := range s.next {
			if first < 0 || i < first {
				first = i
			}
		}
		f.log.Debug("whole-blob stream starts again: chunks it passed are wanted and not cached", "digest", s.d, "chunks", len(s.next), "first", first)
		next = f.newStreamLocked(s.d, s.size, s.why, s.next)
	} else {
		delete(f.streams.m, s.d)
	}
	f.streams.mu.Unlock()
	for i, w := range left {
		k := cache.Key{Digest: s.d, Index: i}
		f.release(k, w.fl)
		f.flights.land(k, w.fl, nil, fmt.Errorf("fetch %s: %w", k, err))
	}
	return next
}

// passBlob reads s's blob from byte 0 through the chunks waited for,
// landing each chunk that passes.
func (f *Fetcher) passBlob(s *stream) (err error) {
	release, err := f.slots.acquire(s.ctx, true, nil) // readers wait for it
	if err != nil {
		return fmt.Errorf("wait for a request slot: %w", context.Cause(s.ctx))
	}
	defer release()
	// Chunks waited for may have landed in a cache meanwhile (the next
	// stream's flights waited for the previous one, which put them there).
	if !f.landCached(s) {
		return nil
	}
	var buf []byte
	start := time.Now()
	defer func() { f.opts.Observer.Request(s.d, time.Since(start), err) }()
	return f.src.StreamBlob(s.ctx, s.d, func(body io.Reader, declared int64) error {
		if declared >= 0 && declared != s.size {
			if declared < s.size {
				return fmt.Errorf("%w: it is %d bytes, its descriptor says %d", ErrBlobSize, declared, s.size)
			}
			return fmt.Errorf("the blob is %d bytes, its descriptor says %d", declared, s.size)
		}
		for i := int64(0); i < numChunks(s.size, f.opts.ChunkSize); i++ {
			_, n := chunkRange(i, s.size, f.opts.ChunkSize)
			if !f.streamWants(s) {
				return nil // nobody waits ahead: close the body
			}
			if i < s.at { // passed before a retry started again from byte 0
				if _, err := io.CopyN(io.Discard, body, n); err != nil {
					return fmt.Errorf("skip chunk %d: %w", i, unexpectedEOF(err))
				}
				continue
			}
			if int64(len(buf)) != n {
				buf = make([]byte, n)
			}
			if _, err := io.ReadFull(body, buf); err != nil {
				return fmt.Errorf("read chunk %d: %w", i, unexpectedEOF(err))
			}
			if f.pass(s, i, buf) {
				buf = nil // it belongs to the caches now
			}
		}
		return nil
	})
}

// unexpectedEOF: the body ended before the blob did.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// landCached lands the flights waiting for s whose chunks are cached and
// reports whether any flight still waits.
func (f *Fetcher) landCached(s *stream) bool {
	f.streams.mu.Lock()
	idx := make([]int64, 0, len(s.waiting))
	for i := range s.waiting {
		idx = append(idx, i)
	}
	f.streams.mu.Unlock()
	for _, i := range idx {
		k := cache.Key{Digest: s.d, Index: i}
		b, ok := f.cached(k, s.size)
		if !ok {
			continue
		}
		f.streams.mu.Lock()
		w, mine := s.waiting[i]
		delete(s.waiting, i)
		f.streams.mu.Unlock()
		if mine {
			f.release(k, w.fl)
			f.flights.land(k, w.fl, b, nil)
		}
	}
	return f.streamWants(s)
}

// streamWants fails the flights waiting for s, or for the stream after it,
// past their deadline, and reports whether s should go on: a flight waits
// for it, it has not passed the furthest chunk waited for, or a flight
// joined less than streamLinger ago. If not, s stops taking waiters (later
// ones wait for the next stream).
func (f *Fetcher) streamWants(s *stream) bool {
	now := time.Now()
	var expired []struct {
		i int64
		w waiter
	}
	f.streams.mu.Lock()
	for _, m := range []map[int64]waiter{s.waiting, s.next} {
		for i, w := range m {
			if now.After(w.deadline) {
				expired = append(expired, struct {
					i int64
					w waiter
				}{i, w})
				delete(m, i)
			}
		}
	}
	linger := s.at <= s.target+max(streamLingerBytes, 2*f.opts.MaxRequest)/f.opts.ChunkSize && now.Sub(s.lastWant) < streamLinger
	wants := len(s.waiting) > 0 || s.at <= s.target || linger
	if !wants {
		s.stopped = true
	}
	f.streams.mu.Unlock()
	for _, e := range expired {
		i, w := e.i, e.w
		k := cache.Key{Digest: s.d, Index: i}
		f.release(k, w.fl)
		f.flights.land(k, w.fl, nil, fmt.Errorf("fetch %s: stream %s from byte 0 (%v): %w", k, s.d, s.why, errStreamDeadline))
	}
	return wants
}

// pass lands chunk i of s's blob, just read into b: in the caches unless
// it is there, and in its waiting flight. It reports whether b now belongs
// to the caches or a flight.
func (f *Fetcher) pass(s *stream, i int64, b []byte) bool {
	k := cache.Key{Digest: s.d, Index: i}
	if err := f.checkChunk(k, s.size, b); err != nil {
		f.passBad(s, i, err)
		return false
	}
	// Into memory before it counts as passed: a flight that joins after
	// that finds it there.
	// The flight waiting for it (only this goroutine removes waiters)
	// hands its disk claim to the write.
	f.streams.mu.Lock()
	w, mine := s.waiting[i]
	f.streams.mu.Unlock()
	var fl *flight
	if mine {
		fl = w.fl
	}
	kept := false
	if !f.isCached(k) {
		f.store(k, s.size, b, fl)
		kept = true
		f.fetched(s.d, int64(len(b)))
	}
	f.streams.mu.Lock()
	w, mine = s.waiting[i]
	delete(s.waiting, i)
	s.at = i + 1
	if !mine && f.streams.recentBytes+int64(len(b)) <= f.streamRecent() && f.flights.has(k) {
		if f.streams.recent == nil {
			f.streams.recent = map[cache.Key][]byte{}
		}
		f.streams.recent[k] = b // its flight comes late: keep it for that flight
		f.streams.recentBytes += int64(len(b))
		kept = true
	}
	f.streams.mu.Unlock()
	s.stall.Reset(f.opts.FetchTimeout)
	if mine {
		f.release(k, w.fl) // a claim no disk write took: cached already
		f.flights.land(k, w.fl, b, nil)
		kept = true
	}
	return kept
}

// passBad passes chunk i of s's blob, whose bytes failed their check with
// err: nothing of it lands. The flight waiting for it waits for the next
// stream the first time, and fails the second.
func (f *Fetcher) passBad(s *stream, i int64, err error) {
	k := cache.Key{Digest: s.d, Index: i}
	f.streams.mu.Lock()
	w, mine := s.waiting[i]
	delete(s.waiting, i)
	s.at = i + 1
	again := mine && !w.fl.retried
	if again {
		w.fl.retried = true
		s.next[i] = w
	}
	f.streams.mu.Unlock()
	s.stall.Reset(f.opts.FetchTimeout)
	f.opts.Observer.VerifyFailed(s.d)
	f.distrust(s.d, k.Index*f.opts.ChunkSize, f.opts.ChunkSize)
	if !mine || again {
		f.log.Warn("streamed bytes failed their check; not kept", "chunk", k.String(), "host", f.opts.Host, "refetch", again, "err", err)
		return
	}
	f.log.Error("streamed bytes failed their check twice; the read fails", "chunk", k.String(), "host", f.opts.Host, "err", err)
	f.release(k, w.fl)
	f.flights.land(k, w.fl, nil, fmt.Errorf("fetch %s from %s: %w: %w", k, f.opts.Host, ErrCorruptPiece, err))
}
