package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/osimagefs/osimagefs/cache"
)

// Blob is one blob read lazily through a Fetcher.
type Blob struct {
	f      *Fetcher
	digest digest.Digest
	size   int64

	// checkOnce starts, at the first disk hit, the verification of a blob
	// that an earlier process completed on disk but did not verify.
	checkOnce sync.Once
}

// Size is the blob's size from its descriptor.
func (b *Blob) Size() int64 { return b.size }

// Digest names the blob.
func (b *Blob) Digest() digest.Digest { return b.digest }

// ReadAt reads len(p) bytes at off. Each chunk comes from memory, else
// straight from its disk cache file into p, else from one shared fetch;
// the chunks of a read are fetched in parallel. Like io.ReaderAt it
// returns io.EOF when fewer than len(p) bytes remain; on any other error n
// is 0. It is safe for concurrent use.
func (b *Blob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := b.f.badErr(b.digest); err != nil {
		return 0, fmt.Errorf("read %s: %w", b.digest, err)
	}
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", b.digest, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if err := b.f.checkFirst(ctx, b.digest, b.size); err != nil {
		return 0, fmt.Errorf("read %s: %w", b.digest, err)
	}
	n := min(int64(len(p)), b.size-off)
	first, last := span(off, n, b.f.opts.ChunkSize)
	if first == last {
		if err := b.readChunk(ctx, p[:n], off, first); err != nil {
			b.gaveUp(ctx, err, first, last)
			return 0, err
		}
	} else {
		// Chunks in memory are copied here; only the others need a
		// goroutine each, so that they are fetched in parallel.
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.f.opts.Parallel)
		for i := first; i <= last; i++ {
			if !b.fromMemory(p[:n], off, i) {
				g.Go(func() error { return b.readMissing(gctx, p[:n], off, i) })
			}
		}
		if err := g.Wait(); err != nil {
			b.gaveUp(ctx, err, first, last)
			return 0, err
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// gaveUp records, when the read failed at a deadline (the reader's or its
// fetch's), that it gave up on all its chunks (first..last), not only on
// the one that failed: the kernel will ask for them again at once, and
// that re-read should not wait a whole deadline once more.
func (b *Blob) gaveUp(ctx context.Context, err error, first, last int64) {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) && !b.f.timedOut(err) {
		return
	}
	for i := first; i <= last; i++ {
		b.f.flights.abandon(cache.Key{Digest: b.digest, Index: i})
	}
}

// part returns the part of p (which holds the bytes at off) that chunk i
// covers, and where it starts in the chunk.
func (b *Blob) part(p []byte, off, i int64) (dst []byte, inChunk int64) {
	cs := b.f.opts.ChunkSize
	cOff := i * cs
	lo := max(off, cOff)
	hi := min(off+int64(len(p)), cOff+cs)
	return p[lo-off : hi-off], lo - cOff
}

// fromMemory fills the part of p that chunk i covers from the memory
// cache, if the chunk is there.
func (b *Blob) fromMemory(p []byte, off, i int64) bool {
	c, ok := b.f.cache.Get(cache.Key{Digest: b.digest, Index: i})
	b.f.opts.Observer.Lookup(TierMemory, ok)
	if ok {
		dst, at := b.part(p, off, i)
		copy(dst, c[at:])
	}
	return ok
}

// readChunk fills the part of p (which holds the bytes at off) that chunk
// i covers: from memory, from disk, or fetched.
func (b *Blob) readChunk(ctx context.Context, p []byte, off, i int64) error {
	if b.fromMemory(p, off, i) {
		return nil
	}
	return b.readMissing(ctx, p, off, i)
}

// readMissing is readChunk for a chunk not in memory.
func (b *Blob) readMissing(ctx context.Context, p []byte, off, i int64) error {
	cs := b.f.opts.ChunkSize
	dst, at := b.part(p, off, i)
	k := cache.Key{Digest: b.digest, Index: i}
	if b.f.opts.Disk != nil {
		ok := b.f.readDiskChecked(k, b.size, dst, at)
		b.f.opts.Observer.Lookup(TierDisk, ok)
		if ok {
			b.checkOnce.Do(func() {
				if chunks := numChunks(b.size, cs); b.f.opts.Integrity.Whole(b.digest) && b.f.opts.Disk.NeedsVerify(b.digest, chunks) {
					go b.f.verify(b.digest, b.size)
				}
			})
			return nil
		}
	}
	c, err := b.f.chunk(ctx, b.digest, b.size, i)
	if err != nil {
		return err
	}
	if int64(len(c)) < at+int64(len(dst)) {
		return fmt.Errorf("read %s: chunk %d holds %d bytes, want %d", b.digest, i, len(c), at+int64(len(dst)))
	}
	copy(dst, c[at:])
	return nil
}
