package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"time"
)

// maxAttemptsWithoutDeadline bounds retries when the context has no
// deadline, so that nothing retries forever.
const maxAttemptsWithoutDeadline = 6

// maxUnauthorizedRetries bounds how often one call tries again after a 401
// that the transport's token refresh did not cure.
const maxUnauthorizedRetries = 2

// retry runs fn until it succeeds, fails permanently, or ctx ends. Waits
// grow exponentially from 50 ms with full jitter, capped by MaxBackoff, and
// honour a registry's Retry-After. When the next attempt could only start
// after ctx's deadline, retry gives up at once instead of waiting for the
// deadline. The returned error names what was being done and the attempts
// made.
func (s *Store) retry(ctx context.Context, e *endpoint, what string, fn func(context.Context) error) error {
	return s.retryN(ctx, e, what, 0, fn)
}

// retryN is retry making at most maxAttempts attempts (0: no limit).
func (s *Store) retryN(ctx context.Context, e *endpoint, what string, maxAttempts int, fn func(context.Context) error) error {
	deadline, hasDeadline := ctx.Deadline()
	var err error
	refusals, unauthorized := 0, 0
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (after %d attempts: %w)", what, ctx.Err(), attempt, err)
		}
		if errors.Is(err, errRedirectRefused) {
			refusals++
		}
		again := transient(err)
		if se := (*StatusError)(nil); !again && errors.As(err, &se) && se.Code == http.StatusUnauthorized && unauthorized < maxUnauthorizedRetries {
			// The transport fetched a new token on this 401 and the registry
			// refused it too: another request racing with this one used it
			// up, or it expired at once. Try again with whatever token the
			// transport holds now (it refreshes again on the next 401).
			unauthorized++
			again = true
		}
		if !again || (!hasDeadline && attempt >= maxAttemptsWithoutDeadline) || refusals > maxRedirectRefusals ||
			(maxAttempts > 0 && attempt >= maxAttempts) {
			if attempt == 1 {
				return fmt.Errorf("%s: %w", what, err)
			}
			return fmt.Errorf("%s: %w (after %d attempts)", what, err, attempt)
		}
		wait := s.backoff(attempt, err)
		if hasDeadline && time.Until(deadline) <= wait {
			return fmt.Errorf("%s: %w: the next attempt would start %s after it (after %d attempts: %w)",
				what, context.DeadlineExceeded, (wait - time.Until(deadline)).Round(time.Millisecond), attempt, err)
		}
		s.log.Debug("retrying", "host", e.host, "what", what, "attempt", attempt, "wait", wait, "err", err)
		if s.opts.OnRetry != nil {
			s.opts.OnRetry(e.host, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (after %d attempts: %w)", what, ctx.Err(), attempt, err)
		case <-t.C:
		}
	}
}

// backoff is the wait before attempt+1.
func (s *Store) backoff(attempt int, err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		return min(se.RetryAfter, 30*time.Second)
	}
	ceiling := min(s.opts.maxBackoff(), 50*time.Millisecond<<min(attempt, 16))
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

// transient reports whether err may go away on retry.
func transient(err error) bool {
	if errors.Is(err, ErrPlainHTTP) {
		return false
	}
	if errors.Is(err, errStalled) || errors.Is(err, errRedirectRefused) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.transient()
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrBadResponse) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
