package lazy

import (
	"context"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
)

// AheadReplay: chunks fetched ahead by Replay (a boot profile).
const AheadReplay AheadKind = "replay"

// replaySpreadMin is the least a replay request carries when a profile is
// spread over the requests in flight: smaller neighbours stay merged.
const replaySpreadMin = 1 << 20

// ReplayRange is a byte range of a blob to fetch ahead: one entry of a
// boot profile, with the blob's size from its descriptor.
type ReplayRange struct {
	Digest digest.Digest
	Size   int64 // of the blob
	Off    int64
	Len    int64
}

// ReplayStats is what a Replay did.
type ReplayStats struct {
	Requests int   // range requests sent (runs of chunks)
	Bytes    int64 // bytes of the chunks sent for fetching
	Skipped  int64 // bytes of chunks already cached or in flight
	// Limited: the budget ran out before the last range.
	Limited bool
}

// Replay fetches the chunks that hold ranges, in their order, ahead of the
// readers that will want them (a boot profile replayed right after
// mounting). Each chunk is fetched at most once, and not at all when it is
// cached or in flight; consecutive chunks, of one range or of neighbouring
// ones, go in one request of up to MaxRequest bytes, less when that
// spreads the profile over more requests; up to Parallel
// requests are in flight, at background priority (slots): a reader's fetch
// goes first, and a reader that wants a chunk Replay has claimed promotes
// its request. At most budget bytes are sent for fetching (the cache
// would evict more before anyone read them). It returns once every request
// it sent has ended, or when ctx ends (requests in flight then go on until
// the Fetcher closes). Failures are not returned: a reader fetches again.
func (f *Fetcher) Replay(ctx context.Context, ranges []ReplayRange, budget int64) ReplayStats {
	var st ReplayStats
	cs := f.opts.ChunkSize

	// The chunks, in order, each once.
	type chunkRef struct {
		d     digest.Digest
		size  int64
		index int64
	}
	var order []chunkRef
	seen := map[cache.Key]bool{}
	var listed int64 // bytes of the chunks in order: beyond budget, none is fetched
list:
	for _, r := range ranges {
		if r.Len <= 0 || r.Off < 0 || r.Off >= r.Size || f.badErr(r.Digest) != nil {
			continue
		}
		first, last := span(r.Off, min(r.Len, r.Size-r.Off), cs)
		for i := first; i <= last; i++ {
			if listed > budget {
				st.Limited = true
				break list
			}
			k := cache.Key{Digest: r.Digest, Index: i}
			if !seen[k] {
				seen[k] = true
				order = append(order, chunkRef{r.Digest, r.Size, i})
				_, n := chunkRange(i, r.Size, cs)
				listed += n
			}
		}
	}

	// A profile is what a boot waits for: a large one is spread over all
	// the requests in flight rather than sent in a few of MaxRequest (over
	// a WAN that limits each connection, more connections fetch faster),
	// in requests of at least replaySpreadMin.
	spread := (int64(len(order)) + int64(f.opts.Parallel) - 1) / int64(f.opts.Parallel)
	maxRun := max(1, min(f.opts.MaxRequest/cs, max(spread, replaySpreadMin/cs)))

	// Runs are claimed one at a time, once a window place is free, and
	// sent at once: a claimed chunk never waits for the window, so a
	// reader who joins it waits only for a request slot.
	window := make(chan struct{}, 2*f.opts.Parallel)
	var wg sync.WaitGroup
	for next := 0; next < len(order); {
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return st
		}
		var (
			first int64
			fls   []*flight
			h     = newHurry()
			c     = order[next]
		)
		for ; next < len(order); next++ {
			o := order[next]
			if len(fls) > 0 && (o.d != c.d || o.index != first+int64(len(fls)) || int64(len(fls)) >= maxRun) {
				break
			}
			_, n := chunkRange(o.index, o.size, cs)
			k := cache.Key{Digest: o.d, Index: o.index}
			if f.isCached(k) {
				st.Skipped += n
				if len(fls) > 0 {
					next++
					break
				}
				continue
			}
			if st.Bytes+n > budget {
				st.Limited = true
				next = len(order)
				break
			}
			fl, ok := f.flights.tryClaim(k, h)
			if !ok {
				st.Skipped += n
				if len(fls) > 0 {
					next++
					break
				}
				continue
			}
			if len(fls) == 0 {
				first, c = o.index, o
			}
			fls = append(fls, fl)
			st.Bytes += n
		}
		if len(fls) == 0 {
			<-window
			continue
		}
		st.Requests++
		var runBytes int64
		for j := range fls {
			_, n := chunkRange(first+int64(j), c.size, cs)
			runBytes += n
		}
		f.opts.Observer.Ahead(c.d, AheadReplay, runBytes)
		// The run is in the queue for a request slot (or done: its chunks
		// were on disk) before the next is claimed: runs queue in order.
		queued := make(chan struct{})
		var once sync.Once
		mark := func() { once.Do(func() { close(queued) }) }
		f.slots.onQueued(h.channel(), mark)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-window }()
			defer mark()
			defer f.slots.forget(h.channel())
			f.fetchRun(c.d, c.size, first, fls, h)
		}()
		<-queued
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return st
}
