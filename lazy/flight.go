package lazy

import (
	"sync"

	"github.com/osimagefs/osimagefs/cache"
)

// flight is one chunk being fetched. Everyone who wants the chunk while it
// is in flight waits on done and shares the result.
type flight struct {
	done chan struct{}
	data []byte
	err  error
}

// flights is the table of chunks in flight. It plays the part of
// x/sync/singleflight for chunks, with one difference that singleflight
// cannot express: one range request may carry a whole run of chunks (a
// sequential stream is fetched in large requests), and each chunk of the
// run must still be claimed individually so that no chunk is ever fetched
// twice at the same time.
type flights struct {
	mu sync.Mutex // guards m
	m  map[cache.Key]*flight
}

func newFlights() *flights { return &flights{m: map[cache.Key]*flight{}} }

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

// tryClaim claims chunk k only if it is not in flight yet.
func (fs *flights) tryClaim(k cache.Key) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if _, ok := fs.m[k]; ok {
		return nil, false
	}
	fl := &flight{done: make(chan struct{})}
	fs.m[k] = fl
	return fl, true
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
