package blobstore

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// recentFailure is how long a range whose read failed at its deadline
// makes reads that overlap it get a single quick attempt.
const recentFailure = 2 * time.Second

// maxFailedRanges bounds the failed ranges remembered per blob.
const maxFailedRanges = 64

// failedRange is the bytes [off, end) of a blob, whose read failed at its
// deadline at time at.
type failedRange struct {
	off, end int64
	at       time.Time
}

// failedRanges remembers, per blob, the ranges whose reads failed at their
// deadline in the last recentFailure. The zero value is ready to use; it is
// safe for concurrent use.
type failedRanges struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]failedRange
}

// recent reports whether a read of [off, off+n) of d overlapping it failed
// at its deadline less than recentFailure ago, and how long ago.
func (f *failedRanges) recent(d digest.Digest, off int64, n int) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.pruneLocked(d)
	for i := len(rs) - 1; i >= 0; i-- {
		if r := rs[i]; r.off < off+int64(n) && off < r.end {
			return time.Since(r.at), true
		}
	}
	return 0, false
}

// remember records that the read of [off, off+n) of d failed at its deadline.
func (f *failedRanges) remember(d digest.Digest, off int64, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blobs == nil {
		f.blobs = map[digest.Digest][]failedRange{}
	}
	rs := f.pruneLocked(d)
	if len(rs) >= maxFailedRanges {
		rs = rs[1:]
	}
	f.blobs[d] = append(rs, failedRange{off: off, end: off + int64(n), at: time.Now()})
}

// forget drops the failures of d that overlap [off, off+n), which was just
// read successfully.
func (f *failedRanges) forget(d digest.Digest, off int64, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.blobs[d]
	if len(rs) == 0 {
		return
	}
	kept := rs[:0]
	for _, r := range rs {
		if !(r.off < off+int64(n) && off < r.end) {
			kept = append(kept, r)
		}
	}
	f.setLocked(d, kept)
}

// pruneLocked drops d's failures older than recentFailure and returns the
// rest, oldest first.
func (f *failedRanges) pruneLocked(d digest.Digest) []failedRange {
	rs := f.blobs[d]
	i := 0
	for i < len(rs) && time.Since(rs[i].at) >= recentFailure {
		i++
	}
	if i > 0 {
		f.setLocked(d, rs[i:])
	}
	return f.blobs[d]
}

func (f *failedRanges) setLocked(d digest.Digest, rs []failedRange) {
	if len(rs) == 0 {
		delete(f.blobs, d)
		return
	}
	f.blobs[d] = rs
}
