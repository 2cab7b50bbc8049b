package lazy

import (
	"context"
	"sync"
)

// slots bounds the range requests in flight over all blobs. Demand fetches
// (a reader is waiting) go before background ones (read-ahead, prefetch):
// waiting demand fetches are granted first, and background fetches never
// hold the last reserved slot, so a reader is served promptly even while
// slow prefetch runs hold every slot they may.
//
// A background fetch that a reader starts waiting for is promoted to
// demand (hurry), in the queue or, if it holds a slot, in the count.
type slots struct {
	mu       sync.Mutex // guards the fields below
	total    int
	reserved int // slots only demand fetches may take
	busy     int // slots held
	bgBusy   int // of which by background fetches
	queue    []*slotWaiter
	// queued holds, by hurry channel, what to call once a background
	// fetch promoted through that channel has joined the queue (Replay
	// uses it to queue its runs in order).
	queued map[<-chan struct{}]func()
}

// slotWaiter is one fetch waiting for a slot.
type slotWaiter struct {
	ready   chan struct{} // closed when granted
	demand  bool
	granted bool
}

func newSlots(total int) *slots {
	s := &slots{total: total}
	if total > 1 {
		s.reserved = 1
	}
	return s
}

// acquire waits for a slot. A background fetch is promoted when hurry is
// closed. The slot is given back by calling the returned release once.
// It fails only when ctx ends first.
func (s *slots) acquire(ctx context.Context, demand bool, hurry <-chan struct{}) (release func(), err error) {
	w := &slotWaiter{ready: make(chan struct{}), demand: demand}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	s.dispatch()
	notify := s.queued[hurry]
	delete(s.queued, hurry)
	s.mu.Unlock()
	if notify != nil {
		notify()
	}
	if demand {
		hurry = nil
	}
	for {
		select {
		case <-w.ready:
			return func() { s.release(w) }, nil
		case <-hurry:
			hurry = nil
			s.mu.Lock()
			if !w.demand {
				w.demand = true
				if w.granted {
					s.bgBusy--
				}
				s.dispatch()
			}
			s.mu.Unlock()
		case <-ctx.Done():
			s.mu.Lock()
			if w.granted {
				s.mu.Unlock()
				s.release(w)
			} else {
				s.remove(w)
				s.mu.Unlock()
			}
			return nil, ctx.Err()
		}
	}
}

// onQueued calls fn once a background fetch promoted through hurry has
// joined the queue (or been granted a slot at once). Forget removes it.
func (s *slots) onQueued(hurry <-chan struct{}, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued == nil {
		s.queued = map[<-chan struct{}]func(){}
	}
	s.queued[hurry] = fn
}

// forget drops what onQueued registered for hurry, if it was not called.
func (s *slots) forget(hurry <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.queued, hurry)
}

func (s *slots) release(w *slotWaiter) {
	s.mu.Lock()
	s.busy--
	if !w.demand {
		s.bgBusy--
	}
	s.dispatch()
	s.mu.Unlock()
}

// dispatch grants what the free slots allow: the waiting demand fetches in
// order, then the background ones. Called with mu held.
func (s *slots) dispatch() {
	for _, demand := range []bool{true, false} {
		for i := 0; i < len(s.queue) && s.busy < s.total; {
			w := s.queue[i]
			if w.demand != demand || (!demand && s.bgBusy >= s.total-s.reserved) {
				i++
				continue
			}
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			w.granted = true
			s.busy++
			if !demand {
				s.bgBusy++
			}
			close(w.ready)
		}
	}
}

// remove takes a waiter that gave up out of the queue. Called with mu held.
func (s *slots) remove(w *slotWaiter) {
	for i, q := range s.queue {
		if q == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return
		}
	}
}
