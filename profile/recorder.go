package profile

import (
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Recorder builds a profile from the reads of a mount: each byte range
// read for the first time, in order, stamped with its time since Start.
// A read of bytes already recorded adds only the bytes that are new; a
// range that begins where the last entry of the same blob ends extends
// that entry. It keeps at most MaxEntries entries (Full says when it
// stopped). It is safe for concurrent use.
type Recorder struct {
	now func() time.Time

	mu      sync.Mutex // guards the fields below
	start   time.Time
	entries []Entry
	last    map[digest.Digest]int    // the index of each blob's last entry
	seen    map[digest.Digest][]span // bytes recorded, sorted, disjoint
	full    bool
}

// span is the bytes [off, end) of a blob.
type span struct{ off, end int64 }

// NewRecorder makes a Recorder; now is its clock (nil: time.Now).
func NewRecorder(now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, start: now(), last: map[digest.Digest]int{}, seen: map[digest.Digest][]span{}}
}

// Start sets the time that at_ms counts from: when the mount was ready.
func (r *Recorder) Start() {
	r.mu.Lock()
	r.start = r.now()
	r.mu.Unlock()
}

// Record notes a read of n bytes at off of blob d.
func (r *Recorder) Record(d digest.Digest, off, n int64) {
	if n <= 0 || off < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	at := max(0, r.now().Sub(r.start).Milliseconds())
	for _, s := range r.fresh(d, span{off, off + n}) {
		if i, ok := r.last[d]; ok && r.entries[i].End() == s.off {
			r.entries[i].Len += s.end - s.off
			continue
		}
		if len(r.entries) >= MaxEntries {
			r.full = true
			return
		}
		r.last[d] = len(r.entries)
		r.entries = append(r.entries, Entry{Digest: d, Off: s.off, Len: s.end - s.off, AtMs: at})
	}
}

// fresh marks s of blob d as recorded and returns its parts that were not
// yet, in order. Called with mu held.
func (r *Recorder) fresh(d digest.Digest, s span) []span {
	old := r.seen[d]
	// The spans that touch s (overlap or adjoin) are merged with it.
	lo, _ := slices.BinarySearchFunc(old, s.off, func(x span, off int64) int {
		if x.end < off {
			return -1
		}
		return 1
	})
	hi := lo
	var out []span
	cur := s.off
	merged := s
	for ; hi < len(old) && old[hi].off <= s.end; hi++ {
		o := old[hi]
		if o.off > cur {
			out = append(out, span{cur, min(o.off, s.end)})
		}
		cur = max(cur, o.end)
		merged.off, merged.end = min(merged.off, o.off), max(merged.end, o.end)
	}
	if cur < s.end {
		out = append(out, span{cur, s.end})
	}
	r.seen[d] = slices.Replace(old, lo, hi, merged)
	return out
}

// Entries returns the profile so far.
func (r *Recorder) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.entries)
}

// Full reports whether reads were left out because the profile had
// MaxEntries entries.
func (r *Recorder) Full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.full
}
