package lazy

import (
	"sync"
	"time"

	"github.com/osimagefs/osimagefs/cache"
)

// flight is one chunk being fetched. Everyone who wants the chunk while it
// is in flight waits on done and shares the result.
type flight struct {
	done  chan struct{}
	data  []byte
	err   error
	hurry *hurry // of a background fetch; nil for a demand fetch
	// claimed: this Fetcher holds the chunk's claim in the disk cache, to
	// end with a disk write or a release. Only the goroutine fetching the
	// chunk touches it, before the flight lands.
	claimed bool
	// retried: its bytes failed their check once and were fetched again;
	// a second failure fails the flight. Touched like claimed.
	retried bool
}

// recentGiveUp is how long a chunk that a reader gave up on at its
// deadline gets only quickWait from a new reader.
const (
	recentGiveUp = 500 * time.Millisecond
	quickWait    = 500 * time.Millisecond
)

// hurry is closed, once, when a reader starts waiting for a background
// fetch: the fetch then takes a request slot as a demand fetch would.
type hurry struct {
	ch   chan struct{}
	once sync.Once
}

func newHurry() *hurry { return &hurry{ch: make(chan struct{})} }

// up promotes the fetch; it does nothing for a demand fetch (nil).
func (h *hurry) up() {
	if h != nil {
		h.once.Do(func() { close(h.ch) })
	}
}

// channel is closed on up; nil (never ready) for a demand fetch.
func (h *hurry) channel() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.ch
}

// flights is the table of chunks in flight. It plays the part of
// x/sync/singleflight for chunks, with one difference that singleflight
// cannot express: one range request may carry a whole run of chunks (a
// sequential stream is fetched in large requests), and each chunk of the
// run must still be claimed individually so that no chunk is ever fetched
// twice at the same time.
type flights struct {
	mu sync.Mutex // guards m and gaveUp
	m  map[cache.Key]*flight
	// gaveUp: when a reader last gave up on a chunk at its deadline. It is
	// kept by chunk, not by flight: the fetch may fail and a fresh one
	// start before the kernel reads the page again.
	gaveUp map[cache.Key]time.Time
}

func newFlights() *flights {
	return &flights{m: map[cache.Key]*flight{}, gaveUp: map[cache.Key]time.Time{}}
}

// abandon records that a reader gave up on chunk k at its deadline, and
// forgets give-ups older than recentGiveUp.
func (fs *flights) abandon(k cache.Key) {
	now := time.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for old, at := range fs.gaveUp {
		if now.Sub(at) >= recentGiveUp {
			delete(fs.gaveUp, old)
		}
	}
	fs.gaveUp[k] = now
}

// abandonedWithin tells whether a reader gave up on chunk k less than d
// ago, and how long ago.
func (fs *flights) abandonedWithin(k cache.Key, d time.Duration) (time.Duration, bool) {
	fs.mu.Lock()
	at, ok := fs.gaveUp[k]
	fs.mu.Unlock()
	if !ok {
		return 0, false
	}
	ago := time.Since(at)
	return ago, ago < d
}

// claim returns the flight of chunk k and true if the caller created it and
// must fetch the chunk (and then call land), or false if it is already in
// flight and the caller only waits.
func (fs *flights) claim(k cache.Key) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fl, ok := fs.m[k]; ok {
		return fl, false
	}
	fl := &flight{done: make(chan struct{})}
	fs.m[k] = fl
	return fl, true
}

// tryClaim claims chunk k for a background fetch, promoted through h,
// only if it is not in flight yet.
func (fs *flights) tryClaim(k cache.Key, h *hurry) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := fs.m[k]; ok {
		return nil, false
	}
	fl := &flight{done: make(chan struct{}), hurry: h}
	fs.m[k] = fl
	return fl, true
}

// has reports whether chunk k is in flight.
func (fs *flights) has(k cache.Key) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.m[k]
	return ok
}

// land publishes the result of chunk k's flight and ends it. The caller
// puts data in the cache first, so that a reader arriving after the flight
// ends finds it there.
func (fs *flights) land(k cache.Key, fl *flight, data []byte, err error) {
	fs.mu.Lock()
	delete(fs.m, k)
	fs.mu.Unlock()
	fl.data, fl.err = data, err
	close(fl.done)
}
