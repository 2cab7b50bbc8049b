package blobstore

import (
	"math"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Bytes that fail their check (lazy checks them) are blamed on the host
// that sent them: each request records its range and host before any of
// its bytes are handed over, and Distrust passes the mirrors that sent the
// bytes in question over for that blob for distrustFor.

// maxSentRanges bounds the ranges remembered per blob (the newest kept).
const maxSentRanges = 256

// sentRanges are the ranges of each blob that each host sent lately; the
// zero value is ready to use, and it is safe for concurrent use.
type sentRanges struct {
	mu sync.Mutex
	m  map[digest.Digest][]sentRange
}

// sentRange is bytes [off, end) of a blob, sent by from.
type sentRange struct {
	off, end int64
	from     *endpoint
}

// record notes that e sends bytes [off, off+n) of d (n < 0: to the end).
// Older ranges inside it are forgotten: e sent those bytes last.
func (sr *sentRanges) record(d digest.Digest, off, n int64, e *endpoint) {
	end := int64(math.MaxInt64)
	if n >= 0 {
		end = off + n
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.m == nil {
		sr.m = map[digest.Digest][]sentRange{}
	}
	var kept []sentRange
	for _, r := range sr.m[d] {
		if r.off < off || r.end > end {
			kept = append(kept, r)
		}
	}
	kept = append(kept, sentRange{off: off, end: end, from: e})
	if len(kept) > maxSentRanges {
		kept = kept[len(kept)-maxSentRanges:]
	}
	sr.m[d] = kept
}

// mirrors are the mirrors that sent bytes of d in [off, off+n) (n < 0:
// any bytes of d).
func (sr *sentRanges) mirrors(d digest.Digest, off, n int64) []*endpoint {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	var out []*endpoint
	for _, r := range sr.m[d] {
		if n >= 0 && (r.end <= off || r.off >= off+n) {
			continue
		}
		if r.from.mirror && !contains(out, r.from) {
			out = append(out, r.from)
		}
	}
	return out
}

func contains(es []*endpoint, e *endpoint) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// Distrust is told that bytes [off, off+n) of blob d (n < 0: the blob as a
// whole) failed their check (lazy): the mirrors that sent them are passed
// over for d for distrustFor, and the next fetch goes to the next host. It
// reports whether a mirror was passed over (false: the origin sent them,
// and there is no one else to ask).
func (s *Store) Distrust(d digest.Digest, off, n int64) bool {
	ms := s.sent.mirrors(d, off, n)
	for _, m := range ms {
		m.blobs.distrust(d)
		s.log.Warn("bytes from a mirror failed their check: the blob is read from the next host", "host", m.host, "digest", d, "for", distrustFor)
		s.observeOutcome(m, outcomeCorrupt)
	}
	return len(ms) > 0
}
