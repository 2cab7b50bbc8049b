package blobstore

import (
	"sync"
	"time"
)

// A mirror that fails (cannot be reached, times out, answers 5xx or with
// bytes that do not fit) is skipped by every request for a while, from
// healthFirst doubling up to healthMax; then one request tries it (the
// others keep skipping it) and its outcome decides.
const (
	healthFirst = 500 * time.Millisecond
	healthMax   = 10 * time.Second
)

// health is whether a mirror answers; the zero value is a mirror that does.
type health struct {
	mu        sync.Mutex
	backoff   time.Duration // 0: up
	downUntil time.Time
	trial     bool // the one request trying it again is in flight
}

// admit says whether a request may go to the mirror now, and whether it
// is the one request trying it again (which the caller ends with up,
// down, or release).
func (h *health) admit() (ok, trial bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.backoff == 0 {
		return true, false
	}
	if h.trial || time.Now().Before(h.downUntil) {
		return false, false
	}
	h.trial = true
	return true, true
}

// usable reports whether a request could go to the mirror now (admit
// without taking the trial).
func (h *health) usable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.backoff == 0 || (!h.trial && !time.Now().Before(h.downUntil))
}

// up records an answer; it reports whether the mirror was down.
func (h *health) up() (wasDown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	wasDown = h.backoff > 0
	h.backoff, h.trial = 0, false
	return wasDown
}

// down records a failure; it reports whether the mirror was up (the first
// failure of an outage, which is worth a warning).
func (h *health) down() (wasUp bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	wasUp = h.backoff == 0
	switch {
	case wasUp:
		h.backoff = healthFirst
	case now.Before(h.downUntil) && !h.trial:
		return false // one of the requests already in flight: the outage is known
	default:
		h.backoff = min(2*h.backoff, healthMax)
	}
	h.downUntil, h.trial = now.Add(h.backoff), false
	return wasUp
}

// release ends a request that got no verdict (its caller gave up); trial
// is what admit said.
func (h *health) release(trial bool) {
	if !trial {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trial = false
}
