package lazy

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
)

// Waiting for a chunk another process is fetching: the disk cache is
// polled, first often, then less (a fetch of a run takes milliseconds on a
// LAN, more over a WAN).
const (
	pollFirst = 2 * time.Millisecond
	pollMost  = 20 * time.Millisecond
)

// claimOnDisk claims in the shared disk cache the chunks of the run
// first... (claimed here as fls) so that no other process fetches them too.
// It returns the leading part of the run this Fetcher now holds. The chunks
// after a gap are fetched by their own runs; a chunk another process holds
// is waited for (awaitOther). A disk cache error leaves a chunk to be
// fetched here, unclaimed.
func (f *Fetcher) claimOnDisk(d digest.Digest, size, first int64, fls []*flight, h *hurry) (int64, []*flight) {
	var runs [][2]int // [start, end) indexes into fls of the chunks held
	start := -1
	for j := range fls {
		k := cache.Key{Digest: d, Index: first + int64(j)}
		res, err := f.opts.Disk.Claim(k, size)
		if err == nil && res == cache.Claimed {
			// Fetched a moment ago and still on its way to disk (a
			// whole-blob stream passed it): the write that was queued
			// without a claim is refused now that this one holds it, so
			// the chunk goes to disk with this claim instead.
			if b, ok := f.pending(k); ok {
				fls[j].claimed = true
				f.store(k, size, b, fls[j])
				f.flights.land(k, fls[j], b, nil)
				if start >= 0 {
					runs = append(runs, [2]int{start, j})
					start = -1
				}
				continue
			}
		}
		if err != nil || res == cache.Claimed {
			fls[j].claimed = err == nil
			if start < 0 {
				start = j
			}
			continue
		}
		if start >= 0 {
			runs = append(runs, [2]int{start, j})
			start = -1
		}
		go f.awaitOther(d, size, k, fls[j], h)
	}
	if start >= 0 {
		runs = append(runs, [2]int{start, len(fls)})
	}
	if len(runs) == 0 {
		return first, nil
	}
	for _, r := range runs[1:] {
		go f.fetchParts(d, size, first+int64(r[0]), fls[r[0]:r[1]], h)
	}
	return first + int64(runs[0][0]), fls[runs[0][0]:runs[0][1]]
}

// awaitOther lands chunk k, which another fetcher holds in the disk cache,
// once it is there. When that fetcher gives up (its claim goes, the chunk
// still missing) the chunk is fetched here; so it is when the other takes
// longer than a quarter of a fetch's deadline, which keeps a stopped or
// stuck process, or an unreadable chunk, from holding up this one.
func (f *Fetcher) awaitOther(d digest.Digest, size int64, k cache.Key, fl *flight, h *hurry) {
	giveUp := time.Now().Add(f.opts.FetchTimeout / 4)
	wait := pollFirst
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			f.flights.land(k, fl, nil, f.ctx.Err())
			return
		case <-t.C:
		}
		if b, ok := f.cached(k, size); ok {
			f.flights.land(k, fl, b, nil)
			return
		}
		// Fetched here once claimed, and also at giveUp whatever the
		// cache says: a chunk held by a stopped process, or marked present
		// but unreadable, must not hold a reader up for ever.
		res, err := f.opts.Disk.Claim(k, size)
		if err != nil || res == cache.Claimed || time.Now().After(giveUp) {
			fl.claimed = err == nil && res == cache.Claimed
			f.fetchParts(d, size, k.Index, []*flight{fl}, h)
			return
		}
		wait = min(pollMost, wait*3/2)
		t.Reset(wait)
	}
}
