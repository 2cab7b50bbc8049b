package lazy

import (
	"context"
	"time"

	"github.com/osimagefs/osimagefs/cache"
)

// Prefetch starts fetching, in the background, the chunks that hold the n
// bytes at off and are not cached yet. It does not wait; the fetches share
// the global bound on requests with reads, and a read of a chunk being
// prefetched joins that fetch.
func (b *Blob) Prefetch(off, n int64) {
	if n <= 0 || off >= b.size || b.f.badErr(b.digest) != nil {
		return
	}
	n = min(n, b.size-off)
	first, last := span(off, n, b.f.opts.ChunkSize)
	for i := first; i <= last; i++ {
		k := cache.Key{Digest: b.digest, Index: i}
		if _, ok := b.f.cache.Get(k); ok {
			continue
		}
		if b.f.opts.Disk != nil && b.f.opts.Disk.Has(k) {
			continue
		}
		b.f.fillAsync(k, b.size) // the result lands in the caches
	}
}

// Fill brings the whole blob into the cache, chunk after chunk. With
// lowPriority it waits while reads are waiting for fetches, so that it
// gives way to them. It returns when done, when ctx ends, or at the first
// error.
func (b *Blob) Fill(ctx context.Context, lowPriority bool) error {
	total := numChunks(b.size, b.f.opts.ChunkSize)
	for i := int64(0); i < total; i++ {
		for lowPriority && b.f.active.Load() > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		k := cache.Key{Digest: b.digest, Index: i}
		if _, ok := b.f.cache.Get(k); ok {
			continue
		}
		if b.f.opts.Disk != nil && b.f.opts.Disk.Has(k) {
			continue
		}
		select {
		case r := <-b.f.fillAsync(k, b.size):
			if r.Err != nil {
				return r.Err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
