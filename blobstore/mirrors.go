package blobstore

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// What a mirror does with a blob, learned from its answers and remembered
// per mirror and blob.
//
// A pull-through cache that does not hold a blob yet answers a range
// request with the whole blob (200) while it fetches it from the origin
// (Distribution, Harbor); Distribution 2.8 goes on filling when the client
// hangs up, and answers every other request during the fill with a fresh
// GET of its own to the origin (measured: about 300 KB per request that
// hangs up at once). So such a mirror is asked once, hung up on, and left
// alone for that blob while it fills, the reads going to the next host;
// after fillingFirst it is asked again, by one request, waits doubling up
// to fillingMax. A blob whose mode is not known yet is asked by one request
// at a time: the others wait for its answer's status (a warm mirror serves
// them all; a cold one is asked once, not once per request).
type blobMode uint8

const (
	modeUnknown blobMode = iota
	modeRanged           // answered a range with 206: serves it
	modeFilling          // answered a range with the whole blob: filling it
	modeMissing          // answered 404 or refused: does not have it
)

const (
	fillingFirst = 2 * time.Second
	fillingMax   = time.Minute
	missingFor   = time.Minute
	distrustFor  = 10 * time.Minute // sent bytes that failed their check
)

// mirrorBlob is one blob's mode at one mirror.
type mirrorBlob struct {
	mode    blobMode
	until   time.Time     // filling, missing: ask again from then on
	backoff time.Duration // filling: the wait after the next whole-blob answer
	// probe is open while the one request that learns the mode (unknown, or
	// due to ask again) is in flight; it is closed once its status is known.
	probe chan struct{}
}

// mirrorBlobs is the mode of each blob at one mirror; the zero value is
// ready to use, and it is safe for concurrent use.
type mirrorBlobs struct {
	mu sync.Mutex
	m  map[digest.Digest]*mirrorBlob
}

// admit says whether a request for blob d goes to the mirror now. When it
// does and probe is true, the request is the one that learns the mode: the
// caller calls learned with its status, or endProbe when it got none. A
// request for a blob whose mode is unknown waits for the probe in flight,
// and goes elsewhere if the mirror is no longer usable then (a probe that
// failed leaves the mirror to its health).
func (mb *mirrorBlobs) admit(ctx context.Context, d digest.Digest, usable func() bool) (ok, probe bool) {
	for waited := false; ; waited = true {
		if waited && !usable() {
			return false, false
		}
		mb.mu.Lock()
		if mb.m == nil {
			mb.m = map[digest.Digest]*mirrorBlob{}
		}
		b := mb.m[d]
		if b == nil {
			b = &mirrorBlob{}
			mb.m[d] = b
		}
		switch {
		case b.mode == modeRanged:
			mb.mu.Unlock()
			return true, false
		case b.probe == nil && (b.mode == modeUnknown || !time.Now().Before(b.until)):
			b.probe = make(chan struct{})
			mb.mu.Unlock()
			return true, true
		case b.mode != modeUnknown:
			mb.mu.Unlock()
			return false, false // filling or missing: not yet
		}
		wait := b.probe
		mb.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false, false
		}
	}
}

// filling reports whether the mirror is known to be filling blob d.
func (mb *mirrorBlobs) filling(d digest.Digest) bool {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	b := mb.m[d]
	return b != nil && b.mode == modeFilling
}

// learned records the mirror's answer to a request for blob d (its
// status and Content-Length) and releases the requests waiting for it. A
// small blob answered whole is served as well as by ranges.
func (mb *mirrorBlobs) learned(d digest.Digest, status int, size int64) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	b := mb.m[d]
	if b == nil {
		return
	}
	now := time.Now()
	if status == http.StatusOK && size >= 0 && size <= smallWholeBlob {
		status = http.StatusPartialContent
	}
	switch status {
	case http.StatusPartialContent:
		b.mode, b.backoff = modeRanged, 0
	case http.StatusOK:
		if b.mode != modeFilling || b.backoff == 0 {
			b.backoff = fillingFirst
		}
		b.mode, b.until = modeFilling, now.Add(b.backoff)
		b.backoff = min(2*b.backoff, fillingMax)
	case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
		b.mode, b.until = modeMissing, now.Add(missingFor)
	default:
		return // an error status: the mirror's health, not the blob's mode
	}
	if b.probe != nil {
		close(b.probe)
		b.probe = nil
	}
}

// distrust passes the mirror over for blob d for distrustFor: bytes of it
// it sent failed their check.
func (mb *mirrorBlobs) distrust(d digest.Digest) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.m == nil {
		mb.m = map[digest.Digest]*mirrorBlob{}
	}
	b := mb.m[d]
	if b == nil {
		b = &mirrorBlob{}
		mb.m[d] = b
	}
	b.mode, b.until = modeMissing, time.Now().Add(distrustFor)
}

// endProbe releases the requests waiting for the probe of blob d when it
// ended without a status (a failure, or the caller gave up); the next
// request becomes the probe.
func (mb *mirrorBlobs) endProbe(d digest.Digest) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if b := mb.m[d]; b != nil && b.probe != nil {
		close(b.probe)
		b.probe = nil
	}
}

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

// admit says whether a request may go to the mirror now.
func (h *health) admit() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.backoff == 0 {
		return true
	}
	if h.trial || time.Now().Before(h.downUntil) {
		return false
	}
	h.trial = true
	return true
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

// release ends a request that got no verdict (its caller gave up).
func (h *health) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trial = false
}

// errMirrorWhole: a mirror answered a range request past byte 0 with the
// whole blob: it is filling the blob (or ignores Range).
var errMirrorWhole = errors.New("mirror answered with the whole blob")
