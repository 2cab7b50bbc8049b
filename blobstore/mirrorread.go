package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// Reads try the mirrors first, in the configured order, one attempt each,
// and the origin last (with its retries). A mirror that fails is left
// alone for a while (health); one that does not have a blob, or is filling
// it, for that blob (mirrorBlobs).

// readFromMirrors reads the parts of rr not done yet from the mirrors that
// may serve blob rr.d. finished is true when nothing is left for the origin:
// every part is done, ctx ended, or (Options.WholeBlobs) a mirror is
// filling the blob and the caller is to stream it (ErrRangeIgnored).
func (s *Store) readFromMirrors(ctx context.Context, rr *rangeRead) (finished bool, err error) {
	for _, m := range s.mirrors {
		if !m.pull {
			continue
		}
		if s.opts.WholeBlobs && m.blobs.filling(rr.d) {
			return true, &RangeIgnoredError{Host: m.host} // StreamBlob reads it from the mirror
		}
		if !m.health.admit() {
			continue
		}
		ok, probe := m.blobs.admit(ctx, rr.d, m.health.usable)
		if !ok {
			m.health.release()
			if ctx.Err() != nil {
				return true, fmt.Errorf("read %s: %w", rr.d, ctx.Err())
			}
			continue
		}
		handed := rr.handed
		err := s.readAttempt(ctx, m, rr, func(status int, size int64) { m.blobs.learned(rr.d, status, size) })
		if probe {
			m.blobs.endProbe(rr.d)
		}
		s.observeBytes(m, rr.handed-handed)
		if rr.handed > handed {
			s.served.Store(rr.d, m)
		}
		switch {
		case err == nil:
			s.mirrorAnswered(m, nil)
			return true, nil
		case ctx.Err() != nil:
			m.health.release()
			return true, fmt.Errorf("read %s from %s: %w", rr.d, m.host, err)
		case errors.Is(err, errMirrorWhole):
			s.mirrorAnswered(m, err)
			if s.opts.WholeBlobs {
				return true, &RangeIgnoredError{Host: m.host}
			}
		default:
			s.mirrorFailed(m, "read "+rr.d.String(), err)
		}
	}
	return false, nil
}

// Distrust is told that bytes of blob d failed a check (lazy): the mirror
// that last sent bytes of d is passed over for d for distrustFor, and the
// next fetch goes to the next host. It reports whether a mirror was passed
// over (false: the origin sent them, and nothing else can be asked).
func (s *Store) Distrust(d digest.Digest) bool {
	v, ok := s.served.LoadAndDelete(d)
	if !ok {
		return false
	}
	m := v.(*endpoint)
	m.blobs.distrust(d)
	s.log.Warn("bytes from a mirror failed their check: the blob is read from the next host", "host", m.host, "digest", d, "for", distrustFor)
	s.observeOutcome(m, outcomeCorrupt)
	return true
}

// fromMirrors runs attempt once on each mirror with the capability (pull,
// or resolve for a tag) until one succeeds; it reports whether one did.
// Mirrors that do not have the thing, or fail, are passed over.
func (s *Store) fromMirrors(ctx context.Context, resolve bool, what string, attempt func(ctx context.Context, e *endpoint) error) (bool, error) {
	for _, m := range s.mirrors {
		if (resolve && !m.resolve) || (!resolve && !m.pull) || !m.health.admit() {
			continue
		}
		err := attempt(ctx, m)
		switch {
		case err == nil:
			s.mirrorAnswered(m, nil)
			return true, nil
		case ctx.Err() != nil:
			m.health.release()
			return false, fmt.Errorf("%s from %s: %w", what, m.host, err)
		default:
			s.mirrorFailed(m, what, err)
		}
	}
	return false, nil
}

// mirrorAnswered records an answer of m: a success (err nil), or one that
// is no fault of the mirror (it is filling a blob).
func (s *Store) mirrorAnswered(m *endpoint, err error) {
	if m.health.up() {
		s.log.Info("mirror answers again", "host", m.host)
	}
	switch {
	case err == nil:
		s.observeRequest(m, nil)
	case errors.Is(err, errMirrorWhole):
		s.log.Debug("mirror is filling the blob: the next host serves it meanwhile", "host", m.host, "err", err)
		s.observeOutcome(m, outcomeFilling)
	}
}

// mirrorFailed records a failed request to m for what: a mirror that does
// not have the thing (or says the blob ends before the range: the next
// host has the last word) is passed over for it; any other failure leaves
// the mirror alone for a while. The first failure of an outage is a
// warning.
func (s *Store) mirrorFailed(m *endpoint, what string, err error) {
	var se *StatusError
	if errors.Is(err, ErrShortBlob) || errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
		m.health.up()
		s.log.Debug("mirror does not have it: trying the next host", "host", m.host, "what", what, "err", err)
		s.observeOutcome(m, outcomeMissing)
		return
	}
	s.observeRequest(m, err)
	if m.health.down() {
		s.log.Warn("mirror failed: using the next host, and trying it again in a while", "host", m.host, "what", what, "err", err)
		return
	}
	s.log.Debug("mirror failed", "host", m.host, "what", what, "err", err)
}

// Request outcomes, as the metrics label them.
const (
	outcomeOK      = "ok"
	outcomeError   = "error"
	outcomeFilling = "filling" // a mirror answered a range with the whole blob
	outcomeMissing = "missing" // a mirror does not have it (404, or refused)
	outcomeCorrupt = "corrupt" // bytes a mirror sent failed their check
)

func (s *Store) observeRequest(e *endpoint, err error) {
	if err == nil {
		s.observeOutcome(e, outcomeOK)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	s.observeOutcome(e, outcomeError)
}

func (s *Store) observeOutcome(e *endpoint, outcome string) {
	if s.opts.Observer != nil {
		s.opts.Observer.HostRequest(e.host, e.kind(), outcome)
	}
}

func (s *Store) observeBytes(e *endpoint, n int64) {
	if s.opts.Observer != nil && n > 0 {
		s.opts.Observer.HostBytes(e.host, e.kind(), n)
	}
}
