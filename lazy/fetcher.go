package lazy

import (
	"context"
	"errors"
	"io"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/osimagefs/osimagefs/cache"
)

// ErrBlobSize: a blob is shorter than its descriptor says.
var ErrBlobSize = errors.New("blob is shorter than its descriptor")

// RangeReader reads byte ranges of blobs; blobstore.Store is one.
type RangeReader interface {
	ReadAt(ctx context.Context, d digest.Digest, p []byte, off int64) (int, error)
}

// Cache holds chunks in memory; cache.Memory is one.
type Cache interface {
	Get(k cache.Key) ([]byte, bool)
	Add(k cache.Key, b []byte)
	RemoveBlob(d digest.Digest)
}

// DiskCache holds chunks persistently and verifies complete blobs;
// cache.Disk is one.
type DiskCache interface {
	ReadAt(k cache.Key, p []byte, off int64) (bool, error)
	Has(k cache.Key) bool
	Add(k cache.Key, b []byte) error
	NeedsVerify(d digest.Digest, chunks int64) bool
	Verify(ctx context.Context, d digest.Digest, chunks int64) error
}

// Options configure a Fetcher. Zero values mean the documented defaults.
type Options struct {
	// ChunkSize is the unit of fetching and caching; default 1 MiB.
	ChunkSize int64
	// Parallel bounds the range requests in flight, over all blobs; default 8.
	Parallel int
	// FetchTimeout bounds one shared chunk fetch, retries included; default 60 s.
	FetchTimeout time.Duration
	// Logger gets debug lines; nil is silent.
	Logger *slog.Logger
	// Disk, if set, is the persistent cache behind the memory cache. Blobs
	// are verified against their digest when they become complete in it.
	Disk DiskCache
	// OnFetch, if set, is called after each chunk fetched from the source
	// with its byte count (for metrics and tests).
	OnFetch func(d digest.Digest, bytes int64)
}

// Fetcher turns blobs into chunked, cached, lazily fetched readers. It is
// safe for concurrent use; Close cancels the fetches in flight.
type Fetcher struct {
	src   RangeReader
	cache Cache
	opts  Options
	log   *slog.Logger

	ctx    context.Context // parent of every shared fetch; cancelled by Close
	cancel context.CancelFunc
	group  singleflight.Group
	slots  chan struct{} // one token per range request in flight
	bad    sync.Map      // digest.Digest -> error: blobs that failed verification
	active atomic.Int64  // reads waiting for fetches, for low-priority prefetch
}

// NewFetcher makes a Fetcher reading from src through c.
func NewFetcher(src RangeReader, c Cache, opts Options) (*Fetcher, error) {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 1 << 20
	}
	if opts.ChunkSize < 4096 || opts.ChunkSize > 64<<20 {
		return nil, fmt.Errorf("chunk size %d: must be between 4 KiB and 64 MiB", opts.ChunkSize)
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 60 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fetcher{src: src, cache: c, opts: opts, log: log, ctx: ctx, cancel: cancel, slots: make(chan struct{}, opts.Parallel)}, nil
}

// Close cancels all fetches in flight; readers waiting on them get errors.
func (f *Fetcher) Close() { f.cancel() }

// ChunkSize is the chunk size in use.
func (f *Fetcher) ChunkSize() int64 { return f.opts.ChunkSize }

// Blob returns a reader of the blob d of size bytes.
func (f *Fetcher) Blob(d digest.Digest, size int64) *Blob {
	return &Blob{f: f, digest: d, size: size}
}

// chunk returns chunk i of blob d (of size bytes): from the cache, or
// fetched once for all concurrent callers. The caller stops waiting when
// ctx ends; the fetch itself runs on the Fetcher's context.
func (f *Fetcher) chunk(ctx context.Context, d digest.Digest, size, i int64) ([]byte, error) {
	k := cache.Key{Digest: d, Index: i}
	if b, ok := f.cache.Get(k); ok {
		return b, nil
	}
	ch := f.fillAsync(k, size)
	f.active.Add(1)
	defer f.active.Add(-1)
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for %s: %w", k, ctx.Err())
	}
}

// fillAsync starts (or joins) the one fill of chunk k.
func (f *Fetcher) fillAsync(k cache.Key, size int64) <-chan singleflight.Result {
	return f.group.DoChan(k.Digest.String()+"/"+strconv.FormatInt(k.Index, 10), func() (any, error) {
		return f.fill(k, size)
	})
}

// fill brings one chunk into the memory cache: from the disk cache, or
// fetched and written to both. It runs once per chunk at a time.
func (f *Fetcher) fill(k cache.Key, size int64) ([]byte, error) {
	if b, ok := f.cache.Get(k); ok { // filled while we queued for the flight
		return b, nil
	}
	off, n := chunkRange(k.Index, size, f.opts.ChunkSize)
	if n <= 0 {
		return nil, fmt.Errorf("fetch %s: beyond the end of a %d-byte blob", k, size)
	}
	if f.opts.Disk != nil && f.opts.Disk.Has(k) {
		buf := make([]byte, n)
		if ok, err := f.opts.Disk.ReadAt(k, buf, 0); err == nil && ok {
			f.cache.Add(k, buf)
			return buf, nil
		}
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.opts.FetchTimeout)
	defer cancel()
	select {
	case f.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch %s: wait for a request slot: %w", k, ctx.Err())
	}
	defer func() { <-f.slots }()

	buf := make([]byte, n)
	start := time.Now()
	got, err := f.src.ReadAt(ctx, k.Digest, buf, off)
	if int64(got) != n {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("fetch %s: %w: it ends at byte %d, its descriptor says %d bytes", k, ErrBlobSize, off+int64(got), size)
		}
		return nil, fmt.Errorf("fetch %s: %w", k, err)
	}
	f.log.Debug("fetched chunk", "digest", k.Digest, "chunk", k.Index, "bytes", n, "took", time.Since(start))
	if f.opts.OnFetch != nil {
		f.opts.OnFetch(k.Digest, n)
	}
	f.cache.Add(k, buf)
	if f.opts.Disk != nil {
		if err := f.opts.Disk.Add(k, buf); err != nil {
			f.log.Warn("disk cache write failed; serving from memory", "chunk", k.String(), "err", err)
		} else if chunks := numChunks(size, f.opts.ChunkSize); f.opts.Disk.NeedsVerify(k.Digest, chunks) {
			go f.verify(k.Digest, chunks)
		}
	}
	return buf, nil
}
