package lazy

import "github.com/osimagefs/osimagefs/cache"

// Prefetch starts fetching, in the background, the chunks that hold the n
// bytes at off and are neither cached nor in flight. Consecutive chunks go
// in one range request, up to MaxRequest bytes each, because a registry
// serves one large request much faster than many small ones. It does not
// wait; a read of a chunk being prefetched joins that fetch.
func (b *Blob) Prefetch(off, n int64) {
	if n <= 0 || off >= b.size || b.f.badErr(b.digest) != nil {
		return
	}
	n = min(n, b.size-off)
	first, last := span(off, n, b.f.opts.ChunkSize)
	runs := b.claimRuns(first, last)
	if len(runs) > 0 {
		b.f.opts.Observer.Ahead(b.digest, AheadReadAhead, b.runBytes(runs))
	}
	for _, r := range runs {
		go b.f.fetchRun(b.digest, b.size, r.first, r.flights, r.hurry)
	}
}

// run is a claimed series of consecutive chunks.
type run struct {
	first   int64
	flights []*flight
	hurry   *hurry // promotes the run when a reader waits for one of its chunks
}

// claimRuns claims the chunks first..last that are not cached or in flight
// and groups them into runs of consecutive chunks of at most MaxRequest
// bytes.
func (b *Blob) claimRuns(first, last int64) []run {
	maxRun := max(1, b.f.opts.MaxRequest/b.f.opts.ChunkSize)
	var runs []run
	var cur *run
	for i := first; i <= last; i++ {
		k := cache.Key{Digest: b.digest, Index: i}
		if b.f.isCached(k) {
			cur = nil
			continue
		}
		fresh := cur == nil || int64(len(cur.flights)) >= maxRun
		h := newHurry()
		if !fresh {
			h = cur.hurry
		}
		fl, ok := b.f.flights.tryClaim(k, h)
		if !ok {
			cur = nil
			continue
		}
		if fresh {
			runs = append(runs, run{first: i, hurry: h})
			cur = &runs[len(runs)-1]
		}
		cur.flights = append(cur.flights, fl)
	}
	return runs
}
