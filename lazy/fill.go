package lazy

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/osimagefs/osimagefs/cache"
)

// Fill brings the whole blob into the cache in the background (prefetch):
// its fetches go after reads that wait. With lowPriority no new request
// starts while reads are waiting for fetches, so that it gives way to
// them. It returns when done, when ctx ends, or at the first error.
func (b *Blob) Fill(ctx context.Context, lowPriority bool) error {
	return b.fill(ctx, false, lowPriority)
}

// fill fetches every chunk of the blob not cached, in runs of up to
// MaxRequest bytes with up to Parallel runs in flight (the request slots
// bound them over all blobs), and waits for them and for the chunks others
// had in flight. The first run goes alone: a server that ignores Range
// answers it with the whole blob, which then streams in once (see
// wholestream.go) instead of once per request. demand fetches take any
// slot (Warm: someone waits for the whole blob); others are background
// fetches.
func (b *Blob) fill(ctx context.Context, demand, lowPriority bool) error {
	total := numChunks(b.size, b.f.opts.ChunkSize)
	step := max(1, b.f.opts.MaxRequest/b.f.opts.ChunkSize)
	if total == 0 {
		return nil
	}
	if err := b.fillStretch(ctx, 0, min(total, step)-1, demand, lowPriority); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.f.opts.Parallel)
	for i := step; i < total && gctx.Err() == nil; i += step {
		last := min(total-1, i+step-1)
		g.Go(func() error { return b.fillStretch(gctx, i, last, demand, lowPriority) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// fillStretch fetches the chunks first..last not cached or in flight and
// waits until every chunk of the stretch has landed.
func (b *Blob) fillStretch(ctx context.Context, first, last int64, demand, lowPriority bool) error {
	for lowPriority && b.f.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	runs := b.claimRuns(first, last)
	if len(runs) > 0 && !demand {
		b.f.opts.Observer.Ahead(b.digest, AheadFill, b.runBytes(runs))
	}
	mine := map[int64]*flight{}
	for _, r := range runs {
		for n, fl := range r.flights {
			mine[r.first+int64(n)] = fl
		}
		h := r.hurry
		if demand {
			h = nil // a demand fetch: any slot
		}
		go b.f.fetchRun(b.digest, b.size, r.first, r.flights, h)
	}
	// Our own flights are waited for as such: once landed, a chunk may
	// leave memory before the disk queue has written it, and asking for it
	// again then would fetch it twice.
	for j := first; j <= last; j++ {
		if fl, ok := mine[j]; ok {
			select {
			case <-fl.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if fl.err != nil {
				return fl.err
			}
			continue
		}
		if b.f.isCached(cache.Key{Digest: b.digest, Index: j}) {
			continue
		}
		if _, err := b.f.chunk(ctx, b.digest, b.size, j); err != nil {
			return err
		}
	}
	return nil
}
