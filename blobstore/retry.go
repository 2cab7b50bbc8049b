package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"
)

// maxAttemptsWithoutDeadline bounds retries when the context has no
// deadline, so that nothing retries forever.
const maxAttemptsWithoutDeadline = 6

// retry runs fn until it succeeds, fails permanently, or ctx ends. Waits
// grow exponentially from 50 ms with full jitter, capped by MaxBackoff, and
// honour a registry's Retry-After. The returned error names what was being
// done and the attempts made.
func (s *Store) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	_, hasDeadline := ctx.Deadline()
	var err error
	for attempt := 1; ; attempt++ {
		err = fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (after %d attempts: %w)", what, ctx.Err(), attempt, err)
		}
		if !transient(err) || (!hasDeadline && attempt >= maxAttemptsWithoutDeadline) {
			if attempt == 1 {
				return fmt.Errorf("%s: %w", what, err)
			}
			return fmt.Errorf("%s: %w (after %d attempts)", what, err, attempt)
		}
		wait := s.backoff(attempt, err)
		s.log.Debug("retrying", "what", what, "attempt", attempt, "wait", wait, "err", err)
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
