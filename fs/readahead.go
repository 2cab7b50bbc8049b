package fs

import "sync"

// Prefetcher is implemented by blob readers that can fetch ahead in the
// background (lazy.Blob does).
type Prefetcher interface {
	Prefetch(off, n int64)
}

const (
	// readAheadStart is the first window once reads look sequential.
	readAheadStart = 1 << 20
	// seqSlack is how far a read may start from the furthest point read so
	// far and still count as part of the stream: the kernel's own
	// read-ahead (kernelReadAhead) sends several reads at once, and they
	// reach us in any order.
	seqSlack = kernelReadAhead + 1<<20
)

// readahead is the sequential-access detector of one open file. Once a
// read continues the previous one, a window ahead of the reader is
// prefetched: one MiB at first, then as many bytes as the reader has read
// sequentially so far (so it doubles as the stream goes on), up to max. A
// seek resets it. So a random read fetches only its own chunk, a stream
// fetches well ahead of the reader in large batches (refilled when half
// the window is used), and what is fetched ahead is never more than what
// was read in the stream plus one MiB.
type readahead struct {
	max int64

	mu     sync.Mutex // guards the fields below
	next   int64      // offset after the last read; -1 before the first
	streak int64      // bytes read sequentially in the current stream
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
	sequential := r.next >= 0 && off >= r.next-seqSlack && off <= r.next+seqSlack
	end := off + n
	if !sequential {
		r.streak, r.ahead, r.next = n, 0, end
		return 0, 0
	}
	if end > r.next {
		// Only bytes read count, not a gap jumped over: a reader skipping
		// about (a file system mounting) is not a stream.
		r.streak += min(n, end-r.next)
		r.next = end
	}
	window := min(r.max, max(readAheadStart, r.streak))
	// Refill in batches, when less than half the window is left ahead of
	// the reader: few large requests are much cheaper than many small ones.
	if r.ahead-r.next > window/2 {
		return 0, 0
	}
	from := max(r.next, r.ahead)
	to := r.next + window
	if from >= to {
		return 0, 0
	}
	r.ahead = to
	return from, to - from
}
