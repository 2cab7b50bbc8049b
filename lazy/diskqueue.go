package lazy

import (
	"sync"

	"github.com/osimagefs/osimagefs/cache"
)

// diskQueueLen is how many fetched chunks may wait for the disk cache.
const diskQueueLen = 16

// diskWrite is a chunk waiting to be written to the disk cache.
type diskWrite struct {
	k       cache.Key
	size    int64 // of the blob
	b       []byte
	claimed bool // the chunk's claim comes with it (Fill, not Add)
}

// diskQueue hands fetched chunks to one writer goroutine, off the path of
// the readers waiting for them. A chunk offered while the writer is behind
// is written by the caller instead, which slows fetching down rather than
// growing memory.
//
// Every offer, the close and the count of chunks not yet written are
// guarded by one mutex, so no chunk is ever sent on a closed channel and
// wait never misses one (a sync.WaitGroup cannot be waited on while Add
// may still run from zero).
type diskQueue struct {
	write func(diskWrite) // writes one chunk to the disk cache

	ch chan diskWrite

	mu      sync.Mutex           // guards the fields below
	idle    sync.Cond            // signalled when pending drops to 0
	pending int                  // chunks offered and not yet written
	queued  map[cache.Key][]byte // those chunks, which readers may take from here
	closed  bool
	done    chan struct{} // closed when the writer has returned
}

// newDiskQueue starts the writer, which calls write for each chunk.
func newDiskQueue(write func(diskWrite)) *diskQueue {
	q := &diskQueue{write: write, ch: make(chan diskWrite, diskQueueLen), queued: map[cache.Key][]byte{}, done: make(chan struct{})}
	q.idle.L = &q.mu
	go q.run()
	return q
}

// offer queues w, or writes it at once when the queue is full. After
// close it drops w (the chunk stays in memory only) and reports false.
func (q *diskQueue) offer(w diskWrite) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.pending++
	q.queued[w.k] = w.b
	select {
	case q.ch <- w:
		q.mu.Unlock()
	default:
		q.mu.Unlock()
		q.writeOne(w)
	}
	return true
}

// run writes queued chunks until the queue is closed and drained.
func (q *diskQueue) run() {
	defer close(q.done)
	for w := range q.ch {
		q.writeOne(w)
	}
}

func (q *diskQueue) writeOne(w diskWrite) {
	q.write(w)
	q.mu.Lock()
	delete(q.queued, w.k)
	q.pending--
	if q.pending == 0 {
		q.idle.Broadcast()
	}
	q.mu.Unlock()
}

// get returns chunk k if it waits to be written: the memory cache may have
// let it go already, and it is not on disk yet.
func (q *diskQueue) get(k cache.Key) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	b, ok := q.queued[k]
	return b, ok
}

// wait returns once no chunk is waiting to be written (while fetches go
// on, later chunks may keep it waiting).
func (q *diskQueue) wait() {
	q.mu.Lock()
	for q.pending > 0 {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// close refuses further offers, and returns once every chunk offered is
// written and the writer has returned. It may be called more than once.
func (q *diskQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	<-q.done
	q.wait()
}
