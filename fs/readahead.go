package fs

import "sync"

// Prefetcher is implemented by blob readers that can fetch ahead in the
// background (lazy.Blob does).
type Prefetcher interface {
	Prefetch(off, n int64)
}

// readAheadStart is the first window once reads look sequential.
const readAheadStart = 1 << 20

// readahead is the sequential-access detector of one open file. The window
// starts at one MiB when a read continues the previous one, doubles on each
// further sequential read up to max, and resets on a seek; so a random
// read fetches only its own chunk, and a stream fetches well ahead of the
// reader. The kernel's own read-ahead issues reads slightly out of order,
// so "continues" allows a gap of up to readAheadStart either way.
type readahead struct {
	max int64

	mu     sync.Mutex // guards the fields below
	next   int64      // offset after the last read; -1 before the first
	window int64      // current read-ahead window; 0 when not sequential
	ahead  int64      // prefetch issued up to this offset
}

func newReadahead(max int64) *readahead { return &readahead{max: max, next: -1} }

// advance records a read of n bytes at off and returns the range to
// prefetch (n == 0 for none).
func (r *readahead) advance(off, n int64) (int64, int64) {
	if r == nil || r.max <= 0 {
		return 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sequential := r.next >= 0 && off >= r.next-readAheadStart && off <= r.next+readAheadStart
	end := off + n
	if !sequential {
		r.window, r.ahead, r.next = 0, 0, end
		return 0, 0
	}
	r.next = max(r.next, end)
	r.window = min(r.max, max(readAheadStart, r.window*2))
	from := max(r.next, r.ahead)
	to := r.next + r.window
	if from >= to {
		return 0, 0
	}
	r.ahead = to
	return from, to - from
}
