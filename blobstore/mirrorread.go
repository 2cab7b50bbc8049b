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
		if s.opts.WholeBlobs && m.blobs.filling(rr.d) && m.blobs.usable(rr.d) {
			return true, &RangeIgnoredError{Host: m.host} // StreamBlob reads it from the mirror
		}
		up, trial := m.health.admit()
		if !up {
			continue
		}
		ok, probe := m.blobs.admit(ctx, rr.d, m.health.usable)
		if !ok {
			m.health.release(trial)
			if ctx.Err() != nil {
				return true, fmt.Errorf("read %s: %w", rr.d, ctx.Err())
			}
			continue
		}
		handed := rr.handed
		err := s.readAttempt(ctx, m, rr, func(status int, size int64) { m.blobs.learned(rr.d, status, size) })
		if probe != nil {
			m.blobs.endProbe(rr.d, probe)
		}
		s.observeBytes(m, rr.handed-handed)
		switch {
		case err == nil:
			s.mirrorAnswered(m, nil)
			return true, nil
		case ctx.Err() != nil:
			m.health.release(trial)
			return true, fmt.Errorf("read %s from %s: %w", rr.d, m.host, err)
		case errors.Is(err, errMirrorWhole):
			s.mirrorAnswered(m, err)
			if s.opts.WholeBlobs {
				return true, &RangeIgnoredError{Host: m.host}
			}
		default:
			s.mirrorFailed(m, rr.d, "read "+rr.d.String(), err)
		}
	}
	return false, nil
}

// stopError is an error no other host can cure (the caller's own, from a
// StreamBlob fn): the mirrors are not asked further, nor blamed.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// fromMirrors runs attempt once on each mirror with the capability (pull,
// or resolve for a tag) until one succeeds; it reports whether one did.
// Mirrors that do not have the thing, or fail, are passed over; d, when
// not empty, is the blob or manifest asked for, which a mirror known not to
// have it or distrusted for it is not asked for. An attempt that fails
// with a stopError ends the search with its error.
func (s *Store) fromMirrors(ctx context.Context, resolve bool, d digest.Digest, what string, attempt func(ctx context.Context, e *endpoint) error) (bool, error) {
	for _, m := range s.mirrors {
		if (resolve && !m.resolve) || (!resolve && !m.pull) || (d != "" && !m.blobs.usable(d)) {
			continue
		}
		up, trial := m.health.admit()
		if !up {
			continue
		}
		err := attempt(ctx, m)
		var stop stopError
		switch {
		case err == nil:
			s.mirrorAnswered(m, nil)
			return true, nil
		case ctx.Err() != nil:
			m.health.release(trial)
			return false, fmt.Errorf("%s from %s: %w", what, m.host, err)
		case errors.As(err, &stop):
			m.health.release(trial)
			return false, stop.err
		case errors.Is(err, errDigestMismatch) && d != "":
			m.health.up()
			m.blobs.missing(d)
			s.log.Warn("mirror sent something else than what was asked: trying the next host", "host", m.host, "what", what, "err", err)
			s.observeOutcome(m, outcomeCorrupt)
		default:
			s.mirrorFailed(m, d, what, err)
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

// mirrorFailed records a failed request to m for what (of blob or
// manifest d, if not empty): a mirror that does not have the thing (or
// says the blob ends before the range: the next host has the last word)
// is passed over for it; any other failure leaves the mirror alone for a
// while. The first failure of an outage is a warning.
func (s *Store) mirrorFailed(m *endpoint, d digest.Digest, what string, err error) {
	var se *StatusError
	if errors.Is(err, ErrShortBlob) || errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
		m.health.up()
		if d != "" && se != nil {
			m.blobs.missing(d)
		}
		if se != nil && se.Code != http.StatusNotFound && !m.refusedWarned.Swap(true) {
			s.log.Warn("mirror refuses access (its credentials come from the keychain for its host, or hosts.toml's header): using the next host", "host", m.host, "what", what, "err", err)
		}
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
