package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// errStalled: an attempt received nothing (no response headers, no body
// bytes) for its stall timeout. The attempt is abandoned and retried, so a
// connection that stops passing data costs one stall timeout, not the whole
// deadline.
var errStalled = errors.New("registry stopped sending")

// errRedirectRefused: the storage a registry redirected a blob GET to
// refused the URL (401, 403 or 400: typically an expired pre-signed URL).
// Asking the registry again yields a fresh URL, so it is retried, a few times.
var errRedirectRefused = errors.New("redirected blob URL refused")

// maxRedirectRefusals bounds how often one call asks the registry again
// after the storage it redirects to refused the URL.
const maxRedirectRefusals = 3

// minStallTimeout is the shortest stall timeout an attempt gets, however
// close the deadline is.
const minStallTimeout = 250 * time.Millisecond

// quickStallTimeout is the stall timeout of the single attempt a recently
// failed range gets (see ReadParts).
const quickStallTimeout = 500 * time.Millisecond

// quickAttemptKey marks a context whose attempts use quickStallTimeout.
type quickAttemptKey struct{}

// stallTimeout is how long an attempt started now under ctx may go without
// receiving anything: a third of the time left before ctx's deadline (so
// that a stalled attempt leaves time for more), at least minStallTimeout,
// at most Options.StallTimeout (quickStallTimeout for a quick attempt).
func (s *Store) stallTimeout(ctx context.Context) time.Duration {
	limit := s.opts.stallTimeout()
	if quick, _ := ctx.Value(quickAttemptKey{}).(bool); quick {
		limit = min(limit, quickStallTimeout)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return limit
	}
	return min(limit, max(time.Until(dl)/3, minStallTimeout))
}

// fetch is one attempt: a GET of u from e with extra headers h, whose response
// goes to fn with a body to read instead of resp.Body. A watchdog abandons
// the attempt with errStalled when nothing arrives for the stall timeout,
// first while waiting for the response, then between body reads. A refusal
// from storage the registry redirected to is an errRedirectRefused.
func (s *Store) fetch(ctx context.Context, e *endpoint, u string, h http.Header, fn func(resp *http.Response, body io.Reader) error) error {
	idle := s.stallTimeout(ctx)
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(idle, func() { cancel(errStalled) })
	defer watchdog.Stop()
	stalled := func(err error) error {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errStalled) {
			return fmt.Errorf("%w: nothing received for %s (%w)", errStalled, idle, err)
		}
		return err
	}
	resp, err := e.get(actx, u, h)
	if err != nil {
		return stalled(err)
	}
	defer resp.Body.Close()
	watchdog.Reset(idle)
	if err := fn(resp, &progressReader{r: resp.Body, watchdog: watchdog, idle: idle}); err != nil {
		return stalled(redirectRefused(resp, u, err))
	}
	return nil
}

// progressReader re-arms the stall watchdog whenever data arrives.
type progressReader struct {
	r        io.Reader
	watchdog *time.Timer
	idle     time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.watchdog.Reset(p.idle)
	}
	return n, err
}

// redirectRefused marks err as an errRedirectRefused when resp comes from
// another host than rawURL's after a redirect, with a status that means the
// URL is not (or no longer) valid there.
func redirectRefused(resp *http.Response, rawURL string, err error) error {
	req := resp.Request
	if req == nil || req.Response == nil || req.URL == nil {
		return err // not redirected
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
	default:
		return err
	}
	if orig, perr := url.Parse(rawURL); perr == nil && orig.Host == req.URL.Host {
		return err // the registry itself refused
	}
	// Only the host: the URL's query is a credential.
	return fmt.Errorf("%w: %s answered %w", errRedirectRefused, req.URL.Host, err)
}
