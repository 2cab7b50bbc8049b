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
	// distrusted: bytes of it the mirror sent failed their check; it is
	// not asked for the blob before then, whatever it answers meanwhile.
	distrusted time.Time
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

// getLocked is blob d's entry, made if need be.
func (mb *mirrorBlobs) getLocked(d digest.Digest) *mirrorBlob {
	if mb.m == nil {
		mb.m = map[digest.Digest]*mirrorBlob{}
	}
	b := mb.m[d]
	if b == nil {
		b = &mirrorBlob{}
		mb.m[d] = b
	}
	return b
}

// admit says whether a request for a range of blob d goes to the mirror
// now. When probe is not nil, the request is the one that learns the mode:
// the caller calls learned with its status, or endProbe(d, probe) when it
// got none. A request for a blob whose mode is unknown waits for the probe
// in flight, and goes elsewhere if the mirror is no longer usable then (a
// probe that failed leaves the mirror to its health).
func (mb *mirrorBlobs) admit(ctx context.Context, d digest.Digest, usable func() bool) (ok bool, probe chan struct{}) {
	for waited := false; ; waited = true {
		if waited && !usable() {
			return false, nil
		}
		mb.mu.Lock()
		b := mb.getLocked(d)
		now := time.Now()
		switch {
		case now.Before(b.distrusted):
			mb.mu.Unlock()
			return false, nil
		case b.mode == modeRanged:
			mb.mu.Unlock()
			return true, nil
		case b.probe == nil && (b.mode == modeUnknown || !now.Before(b.until)):
			b.probe = make(chan struct{})
			mb.mu.Unlock()
			return true, b.probe
		case b.mode != modeUnknown:
			mb.mu.Unlock()
			return false, nil // filling or missing: not yet
		}
		wait := b.probe
		mb.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false, nil
		}
	}
}

// usable reports whether a whole blob d (a stream, a document) may be asked
// of the mirror: it is not known to lack it, nor distrusted for it.
// Filling is no reason not to: a whole blob is what a filling mirror sends.
func (mb *mirrorBlobs) usable(d digest.Digest) bool {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	b := mb.m[d]
	if b == nil {
		return true
	}
	now := time.Now()
	return !now.Before(b.distrusted) && !(b.mode == modeMissing && now.Before(b.until))
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
	b := mb.getLocked(d)
	if status == http.StatusOK && size >= 0 && size <= smallWholeBlob {
		status = http.StatusPartialContent
	}
	now := time.Now()
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

// missing records that the mirror does not have blob d (it answered a
// request for all of it with 404, or sent something else).
func (mb *mirrorBlobs) missing(d digest.Digest) {
	mb.learned(d, http.StatusNotFound, -1)
}

// distrust passes the mirror over for blob d for distrustFor: bytes of it
// it sent failed their check.
func (mb *mirrorBlobs) distrust(d digest.Digest) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	mb.getLocked(d).distrusted = time.Now().Add(distrustFor)
}

// endProbe releases the requests waiting for probe, the probe of blob d
// that admit handed out, when it ended without a status (a failure, or
// the caller gave up); the next request becomes the probe. A probe already
// answered (and maybe replaced by a later one) is left alone.
func (mb *mirrorBlobs) endProbe(d digest.Digest, probe chan struct{}) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if b := mb.m[d]; b != nil && b.probe == probe {
		close(b.probe)
		b.probe = nil
	}
}

// errMirrorWhole: a mirror answered a range request past byte 0 with the
// whole blob: it is filling the blob (or ignores Range).
var errMirrorWhole = errors.New("mirror answered with the whole blob")
