package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/integrity"
)

// ErrBlobSize: a blob is shorter than its descriptor says.
var ErrBlobSize = errors.New("blob is shorter than its descriptor")

// Source is where a Fetcher reads blobs from; blobstore.Store is one.
type Source interface {
	PartReader
	BlobStreamer
}

// PartReader reads one byte range of a blob as consecutive parts, handing
// over each part as soon as it has arrived; blobstore.Store is one. A run of
// chunks is then served to its readers as it streams in.
type PartReader interface {
	ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error
}

// distruster is a source that can be told that bytes [off, off+n) of blob
// d it sent (n < 0: the blob as a whole) failed a check, so that it
// fetches them elsewhere next time if it can (blobstore.Store: the mirrors
// that sent them are passed over for d). It reports whether it will.
type distruster interface {
	Distrust(d digest.Digest, off, n int64) bool
}

// distrust tells the source that bytes [off, off+n) of d failed a check,
// and reports whether the next fetch goes elsewhere.
func (f *Fetcher) distrust(d digest.Digest, off, n int64) bool {
	if s, ok := f.src.(distruster); ok {
		return s.Distrust(d, off, n)
	}
	return false
}

// shortBlob is a source's error for a blob that ends before the range
// asked for (blobstore.ShortBlobError): its descriptor claims too much.
type shortBlob interface{ BlobSize() int64 }

// Cache holds chunks in memory; cache.Memory is one.
type Cache interface {
	Get(k cache.Key) ([]byte, bool)
	Add(k cache.Key, b []byte)
	RemoveBlob(d digest.Digest)
}

// DiskCache holds chunks persistently, shared with other processes, and
// marks complete blobs verified; cache.Disk is one. A chunk is claimed before it
// is fetched, so that only one fetcher in any process fetches it; Fill (of
// a blob of size bytes) ends the claim, and so does Release. Add stores a
// chunk fetched without a claim.
type DiskCache interface {
	ReadAt(k cache.Key, p []byte, off int64) (bool, error)
	Has(k cache.Key) bool
	Claim(k cache.Key, size int64) (cache.ClaimResult, error)
	Release(k cache.Key)
	Fill(k cache.Key, size int64, b []byte) error
	Add(k cache.Key, size int64, b []byte) error
	Remove(k cache.Key)
	Drop(d digest.Digest)
	NeedsVerify(d digest.Digest, chunks int64) bool
	Verify(d digest.Digest, chunks int64, check func(r io.Reader) error) error
}

// The defaults of Options. A chunk is small so that a random read fetches
// little (a 4 KiB read fetches 64 KiB, one piece of a chunk table); a
// sequential stream is fetched in runs of chunks of up to MaxRequest, many
// at once, so it moves as fast as with large chunks.
const (
	DefaultChunkSize  = 64 << 10
	DefaultParallel   = 16
	DefaultMaxRequest = 4 << 20
)

// Options configure a Fetcher. Zero values mean the documented defaults.
type Options struct {
	// ChunkSize is the unit of fetching and caching; default
	// DefaultChunkSize.
	ChunkSize int64
	// Parallel bounds the range requests in flight, over all blobs;
	// default DefaultParallel.
	Parallel int
	// MaxRequest is the most bytes one range request carries when a run of
	// chunks is fetched ahead (read-ahead, prefetch); default
	// DefaultMaxRequest.
	MaxRequest int64
	// FetchTimeout bounds one shared fetch, retries included, from the
	// moment it has a request slot; default 60 s. A reader that joins a
	// fetch late and sees it fail at this deadline starts a fresh one.
	FetchTimeout time.Duration
	// Logger gets debug lines; nil is silent.
	Logger *slog.Logger
	// Disk, if set, is the persistent cache behind the memory cache. Blobs
	// are verified against their digest when they become complete in it
	// (if Integrity says so).
	Disk DiskCache
	// Integrity says how fetched and cached bytes are checked; default
	// integrity.WholeBlobs(): whole blobs, once complete on disk.
	Integrity Integrity
	// Host names the source in log lines about bytes that failed a check.
	Host string
	// OnCorrupt, if set, is called once a blob has failed verification and
	// its chunks are dropped, so that copies held elsewhere (the kernel's
	// page cache) can be dropped too.
	OnCorrupt func(d digest.Digest)
	// OnFetch, if set, is called after each chunk fetched from the source
	// with its byte count (for metrics and tests).
	OnFetch func(d digest.Digest, bytes int64)
	// Observer, if set, is told about cache lookups, fetches and
	// verification failures (for metrics); nil is silent.
	Observer Observer
	// CheckFirst hashes a blob that Integrity checks whole, and by no
	// pieces, through the source before any of its bytes is served, and
	// checks every chunk fetched later by the table of chunk digests made
	// on the way (first.go): no byte is served unchecked, disk cache or
	// not. For sources that read whole blobs cheaply (files on this host).
	CheckFirst bool
}

// Fetcher turns blobs into chunked, cached, lazily fetched readers. It is
// safe for concurrent use; Close cancels the fetches in flight.
type Fetcher struct {
	src   Source
	cache Cache
	opts  Options
	log   *slog.Logger

	ctx      context.Context // parent of every shared fetch; cancelled by Close
	cancel   context.CancelFunc
	flights  *flights
	group    singleflight.Group // one verification per blob at a time
	slots    *slots             // bounds the range requests in flight
	diskq    *diskQueue         // chunks waiting for the disk cache; nil without one
	bad      sync.Map           // digest.Digest -> error: blobs that failed verification
	active   atomic.Int64       // reads waiting for fetches, for low-priority prefetch
	answered atomic.Int64       // when a range request last succeeded (Unix ns), for the short wait
	streams  streams            // whole-blob streams, for servers that ignore Range
	first    *checkedFirst      // with CheckFirst: opts.Integrity, with the tables it made
}

// NewFetcher makes a Fetcher reading from src through c.
func NewFetcher(src Source, c Cache, opts Options) (*Fetcher, error) {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < 4096 || opts.ChunkSize > 64<<20 {
		return nil, fmt.Errorf("chunk size %d: must be between 4 KiB and 64 MiB", opts.ChunkSize)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.MaxRequest < opts.ChunkSize {
		opts.MaxRequest = max(opts.ChunkSize, DefaultMaxRequest)
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 60 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = silent{}
	}
	if opts.Integrity == nil {
		opts.Integrity = integrity.WholeBlobs()
	}
	if opts.Host == "" {
		opts.Host = "the source"
	}
	var first *checkedFirst
	if opts.CheckFirst {
		first = &checkedFirst{Integrity: opts.Integrity}
		opts.Integrity = first
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fetcher{src: src, cache: c, opts: opts, log: log, ctx: ctx, cancel: cancel, flights: newFlights(), slots: newSlots(opts.Parallel), first: first}
	if opts.Disk != nil {
		f.diskq = newDiskQueue(f.writeDisk)
	}
	return f, nil
}

// Close cancels all fetches in flight (readers waiting on them get
// errors) and returns once the chunks already fetched are on disk; chunks
// that arrive later stay in memory only.
func (f *Fetcher) Close() {
	f.cancel()
	if f.diskq != nil {
		f.diskq.close()
	}
}

// ChunkSize is the chunk size in use.
func (f *Fetcher) ChunkSize() int64 { return f.opts.ChunkSize }

// Blob returns a reader of the blob d of size bytes.
func (f *Fetcher) Blob(d digest.Digest, size int64) *Blob {
	return &Blob{f: f, digest: d, size: size}
}

// chunk returns chunk i of blob d (of size bytes): from the cache, or
// fetched once for all concurrent callers. The caller stops waiting when
// ctx ends; the fetch itself runs on the Fetcher's context.
//
// A reader's deadline is its own (ctx): one that joined a fetch started
// earlier and sees it fail at that fetch's deadline starts a fresh fetch
// rather than failing early. The one exception: a chunk that a reader gave
// up on at its deadline a moment ago gets only a short wait, in flight or
// fetched afresh, because that is the kernel reading the same page again by
// itself after a failed read (the reader would otherwise wait a second
// whole deadline).
func (f *Fetcher) chunk(ctx context.Context, d digest.Digest, size, i int64) ([]byte, error) {
	k := cache.Key{Digest: d, Index: i}
	f.active.Add(1)
	defer f.active.Add(-1)
	for {
		if b, ok := f.cache.Get(k); ok {
			return b, nil
		}
		fl, mine := f.flights.claim(k)
		if mine {
			go f.fetchRun(d, size, i, []*flight{fl}, nil)
		} else {
			fl.hurry.up()
		}
		wait, why := ctx, ""
		var gaveUpAt int64
		if ago, ok := f.flights.abandonedWithin(k, recentGiveUp); ok {
			var cancel context.CancelFunc
			wait, cancel = context.WithTimeout(ctx, quickWait)
			defer cancel()
			why = fmt.Sprintf(" (a short wait: a reader gave up on it at its deadline %s ago)", ago.Round(time.Millisecond))
			gaveUpAt = time.Now().Add(-ago).UnixNano()
		}
		if err := f.await(ctx, wait, fl, gaveUpAt); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				f.flights.abandon(k)
			}
			return nil, fmt.Errorf("wait for %s%s: %w", k, why, err)
		}
		if !mine && f.timedOut(fl.err) && ctx.Err() == nil {
			continue
		}
		return fl.data, fl.err
	}
}

// await waits for fl to land, until wait ends. A short wait (wait is not
// ctx) that ends after the source has answered a request since gaveUpAt
// goes on until ctx ends: the source is back, and the fetch gets the
// reader's whole deadline after all.
func (f *Fetcher) await(ctx, wait context.Context, fl *flight, gaveUpAt int64) error {
	select {
	case <-fl.done:
		return nil
	case <-wait.Done():
	}
	if wait == ctx || ctx.Err() != nil || f.answered.Load() <= gaveUpAt {
		return wait.Err()
	}
	select {
	case <-fl.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timedOut tells whether a fetch failed at its own deadline (not because
// the Fetcher closed).
func (f *Fetcher) timedOut(err error) bool {
	return err != nil && errors.Is(err, context.DeadlineExceeded) && f.ctx.Err() == nil
}

// fetchRun brings the consecutive chunks first, first+1, ... (one claimed
// flight each) into the caches: each from the disk cache if it is there,
// the rest with one range request, and lands every flight. A run is at
// most maxRun chunks. h is nil for a demand fetch, else the background
// run's promotion.
func (f *Fetcher) fetchRun(d digest.Digest, size, first int64, fls []*flight, h *hurry) {
	// Under CheckFirst nothing of a blob lands before it has been hashed.
	if err := f.checkFirst(f.ctx, d, size); err != nil {
		for j, fl := range fls {
			f.flights.land(cache.Key{Digest: d, Index: first + int64(j)}, fl, nil, fmt.Errorf("fetch %s: %w", cache.Key{Digest: d, Index: first + int64(j)}, err))
		}
		return
	}
	last := first + int64(len(fls)) - 1
	// Re-check the caches: a chunk may have landed after the caller looked
	// and before it claimed the flight.
	for len(fls) > 0 {
		k := cache.Key{Digest: d, Index: first}
		b, ok := f.cached(k, size)
		if !ok {
			break
		}
		f.flights.land(k, fls[0], b, nil)
		first, fls = first+1, fls[1:]
	}
	for len(fls) > 0 {
		k := cache.Key{Digest: d, Index: last}
		b, ok := f.cached(k, size)
		if !ok {
			break
		}
		f.flights.land(k, fls[len(fls)-1], b, nil)
		last, fls = last-1, fls[:len(fls)-1]
	}
	if f.opts.Disk != nil {
		first, fls = f.claimOnDisk(d, size, first, fls, h)
	}
	if len(fls) == 0 {
		return
	}
	f.fetchParts(d, size, first, fls, h)
}

// fetchParts fetches the run of chunks first... (one claimed flight each)
// with one range request, landing each flight as its chunk arrives. It
// waits for a request slot first; its deadline starts once it has one.
//
// A blob checked by pieces is read piece by piece, each checked as soon as
// it has arrived while the next streams in, so a chunk lands a moment
// after its last byte. A chunk with a piece that fails is fetched once
// more by a request of its own (pieceFailed); it lands only checked.
func (f *Fetcher) fetchParts(d digest.Digest, size, first int64, fls []*flight, h *hurry) {
	last := first + int64(len(fls)) - 1
	what := fmt.Sprintf("chunks %d-%d of %s", first, last, d)
	if first == last {
		what = cache.Key{Digest: d, Index: first}.String()
	}
	resolved := 0 // flights landed or handed to a refetch, in order
	fail := func(err error) {
		for j := resolved; j < len(fls); j++ {
			k := cache.Key{Digest: d, Index: first + int64(j)}
			f.release(k, fls[j])
			f.flights.land(k, fls[j], nil, err)
		}
	}
	release, err := f.slots.acquire(f.ctx, h == nil, h.channel())
	if err != nil {
		fail(fmt.Errorf("fetch %s: wait for a request slot: %w", what, err))
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(f.ctx, f.opts.FetchTimeout)
	defer cancel()

	off, _ := chunkRange(first, size, f.opts.ChunkSize)
	chunks := make([][]byte, len(fls))
	for j := range chunks {
		_, n := chunkRange(first+int64(j), size, f.opts.ChunkSize)
		if n <= 0 {
			fail(fmt.Errorf("fetch %s: beyond the end of a %d-byte blob", what, size))
			return
		}
		chunks[j] = make([]byte, n)
	}
	ps := f.opts.Integrity.PieceSize(d)
	parts, owner := splitPieces(chunks, ps)
	bad := make([]error, len(fls)) // the first piece of each chunk that failed
	partOff := off
	start := time.Now()
	err = f.src.ReadParts(ctx, d, parts, off, func(p int) {
		j := owner[p]
		if ps > 0 && bad[j] == nil {
			bad[j] = f.opts.Integrity.CheckPieces(d, partOff, parts[p])
		}
		partOff += int64(len(parts[p]))
		if p+1 < len(parts) && owner[p+1] == j {
			return // more pieces of chunk j to come
		}
		k := cache.Key{Digest: d, Index: first + int64(j)}
		f.fetched(d, int64(len(chunks[j])))
		resolved = j + 1
		if bad[j] != nil {
			f.pieceFailed(d, size, k, fls[j], h, bad[j])
			return
		}
		f.store(k, size, chunks[j], fls[j])
		f.flights.land(k, fls[j], chunks[j], nil)
	})
	if short := shortBlob(nil); errors.As(err, &short) {
		err = fmt.Errorf("%w (its descriptor says %d bytes): %w", ErrBlobSize, size, err)
	}
	if ri := rangeIgnored(nil); errors.As(err, &ri) && ri.RangeIgnored() {
		// Not counted as a request: it may have been refused without one;
		// the stream that takes over is.
		f.streamRun(d, size, first+int64(resolved), fls[resolved:], err)
		return
	}
	f.opts.Observer.Request(d, time.Since(start), err)
	if err != nil {
		fail(fmt.Errorf("fetch %s: %w", what, err))
		return
	}
	f.answered.Store(time.Now().UnixNano())
	f.log.Debug("fetched", "digest", d, "chunks", fmt.Sprintf("%d-%d", first, last), "took", time.Since(start))
}

// splitPieces cuts the chunk buffers into pieces of ps bytes (chunks are
// whole pieces, the last may end short), or leaves them whole when ps is 0.
// owner[p] is the chunk piece p belongs to.
func splitPieces(chunks [][]byte, ps int64) (parts [][]byte, owner []int) {
	if ps == 0 {
		owner = make([]int, len(chunks))
		for j := range owner {
			owner[j] = j
		}
		return chunks, owner
	}
	for j, c := range chunks {
		for len(c) > 0 {
			n := min(int64(len(c)), ps)
			parts = append(parts, c[:n:n])
			owner = append(owner, j)
			c = c[n:]
		}
	}
	return parts, owner
}

// pieceFailed handles chunk k, whose pieces failed their check with err:
// the first time it is fetched once more, on a request of its own; the
// second time its flight fails. Nothing of it lands in a cache.
func (f *Fetcher) pieceFailed(d digest.Digest, size int64, k cache.Key, fl *flight, h *hurry, err error) {
	f.opts.Observer.VerifyFailed(d)
	off := k.Index * f.opts.ChunkSize
	f.distrust(d, off, min(f.opts.ChunkSize, size-off))
	if !fl.retried {
		fl.retried = true
		f.log.Warn("fetched bytes failed their check; fetching them once more", "chunk", k.String(), "host", f.opts.Host, "err", err)
		go f.fetchParts(d, size, k.Index, []*flight{fl}, h)
		return
	}
	f.log.Error("fetched bytes failed their check twice; the read fails", "chunk", k.String(), "host", f.opts.Host, "err", err)
	f.release(k, fl)
	f.flights.land(k, fl, nil, fmt.Errorf("fetch %s from %s: %w: %w", k, f.opts.Host, ErrCorruptPiece, err))
}

// isCached reports whether chunk k is in memory or on disk, reading
// neither.
func (f *Fetcher) isCached(k cache.Key) bool {
	if _, ok := f.pending(k); ok {
		return true
	}
	return f.opts.Disk != nil && f.opts.Disk.Has(k)
}

// pending returns chunk k from memory or the disk queue: fetched, maybe
// not on disk yet.
func (f *Fetcher) pending(k cache.Key) ([]byte, bool) {
	if b, ok := f.cache.Get(k); ok {
		return b, true
	}
	if f.diskq == nil {
		return nil, false
	}
	return f.diskq.get(k)
}

// cached returns chunk k from memory, the disk queue or disk.
func (f *Fetcher) cached(k cache.Key, size int64) ([]byte, bool) {
	if b, ok := f.pending(k); ok {
		return b, true
	}
	if f.opts.Disk == nil || !f.opts.Disk.Has(k) {
		return nil, false
	}
	_, n := chunkRange(k.Index, size, f.opts.ChunkSize)
	buf := make([]byte, n)
	if ok, err := f.opts.Disk.ReadAt(k, buf, 0); err != nil || !ok {
		return nil, false
	}
	if err := f.checkChunk(k, size, buf); err != nil {
		f.corruptOnDisk(k, err)
		return nil, false
	}
	f.cache.Add(k, buf)
	return buf, true
}

// store puts a fetched chunk in memory, and queues it for the disk cache.
// The claim of its flight fl (nil when none waits) goes with it, to be
// ended by the disk write.
func (f *Fetcher) store(k cache.Key, size int64, b []byte, fl *flight) {
	f.cache.Add(k, b)
	if f.diskq == nil {
		return
	}
	w := diskWrite{k: k, size: size, b: b, claimed: fl != nil && fl.claimed}
	if fl != nil {
		fl.claimed = false
	}
	if !f.diskq.offer(w) && w.claimed {
		f.opts.Disk.Release(k)
	}
}

// release ends the claim on chunk k in the disk cache that flight fl
// holds, if it does: for a chunk that lands without a disk write.
func (f *Fetcher) release(k cache.Key, fl *flight) {
	if fl != nil && fl.claimed {
		fl.claimed = false
		f.opts.Disk.Release(k)
	}
}

// writeDisk writes one chunk and starts the verification of its blob when
// that makes the blob complete on disk.
func (f *Fetcher) writeDisk(w diskWrite) {
	if f.badErr(w.k.Digest) != nil {
		if w.claimed {
			f.opts.Disk.Release(w.k) // failed verification: nothing of it goes back
		}
		return
	}
	write := f.opts.Disk.Add
	if w.claimed {
		write = f.opts.Disk.Fill
	}
	if err := write(w.k, w.size, w.b); err != nil {
		f.log.Warn("disk cache write failed; serving from memory", "chunk", w.k.String(), "err", err)
		return
	}
	if f.opts.Integrity.Whole(w.k.Digest) && f.opts.Disk.NeedsVerify(w.k.Digest, numChunks(w.size, f.opts.ChunkSize)) {
		go f.verify(w.k.Digest, w.size)
	}
}
