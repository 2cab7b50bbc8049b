package fs

import "sync"

// Prefetcher is implemented by blob readers that can fetch ahead in the
// background (lazy.Blob does).
type Prefetcher interface {
	Prefetch(off, n int64)
}

// DefaultReadAhead is the default largest window fetched ahead of a
// sequential reader (Options.ReadAhead): 16 requests of 4 MiB in flight.
const DefaultReadAhead = 64 << 20

const (
	// readAheadStart is how much a stream must have read in order before
	// anything is fetched ahead of it: a file system mounting, or a guest
	// booting, reads a few hundred KiB here and there, and fetching ahead
	// of each would fetch several times what is read.
	readAheadStart = 1 << 20
	// backSlack is how far behind the furthest point read so far a read
	// may start and still be part of the stream: the kernel's own
	// read-ahead (kernelReadAhead) sends several reads at once, and they
	// reach us in any order.
	backSlack = kernelReadAhead
	// minJump is the smallest forward gap that still continues a stream;
	// a larger read may jump further (4 times its length), as the
	// kernel's out-of-order reads do.
	minJump = 64 << 10
)

// readahead is the sequential-access detector of one open file. Once a
// stream has read readAheadStart bytes in order, a window ahead of the
// reader is prefetched, as large as what the stream has read (so it
// doubles as the stream goes on), up to max, and topped up whenever a
// quarter of it has been read. A seek resets it. So a random read fetches
// only its own chunks, and what is fetched ahead of a stream is never more
// than what it has read.
type readahead struct {
	max int64

	mu     sync.Mutex // guards the fields below
	next   int64      // offset after the furthest read; -1 before the first
	streak int64      // bytes read in order in the current stream
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
	sequential := r.next >= 0 && off >= r.next-backSlack && off <= r.next+max(minJump, 4*n)
	end := off + n
	if !sequential {
		r.streak, r.ahead, r.next = n, 0, end
		return 0, 0
	}
	if end > r.next {
		// Only bytes read count, not a gap jumped over: a reader skipping
		// about is not a stream.
		r.streak += min(n, end-r.next)
		r.next = end
	}
	if r.streak < readAheadStart {
		return 0, 0
	}
	window := min(r.max, r.streak)
	if r.ahead-r.next > window-window/4 {
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
