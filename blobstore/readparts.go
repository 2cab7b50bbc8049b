package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrShortBlob: the blob ends before the range asked for. Retrying cannot
// help: its descriptor claims more bytes than the registry has.
var ErrShortBlob = errors.New("blob ends before the range asked for")

// ReadParts fills the consecutive buffers parts with the bytes of blob d
// from off on, with one range request for all of them (retried while
// transient), and calls done(i) as soon as part i is filled, in order, so
// that a caller can hand the first parts to readers while the rest are
// still on the wire. A retry asks only for the parts not yet done. Headers
// (status, Content-Range, Content-Length) are checked before any part is
// filled, so a part is only ever done with the bytes of the range asked for.
//
// It returns nil when every part is done, or the error that stopped it
// (ErrShortBlob when the blob ends inside the range). done is called from
// the caller's goroutine; parts already done stay done on error.
func (s *Store) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	var total int64
	for _, p := range parts {
		total += int64(len(p))
	}
	if total == 0 {
		for i := range parts {
			done(i)
		}
		return nil
	}
	next := 0      // first part not done
	nextOff := off // its offset
	what := fmt.Sprintf("read %s bytes=%d-%d", d, off, off+total-1)
	attempts := 0
	if ago, failed := s.failed.recent(d, off, int(total)); failed {
		attempts = 1
		ctx = context.WithValue(ctx, quickAttemptKey{}, true)
		what += fmt.Sprintf(" (one quick attempt: a read of these bytes failed at its deadline %s ago)", ago.Round(time.Millisecond))
	}
	err := s.retryN(ctx, what, attempts, func(ctx context.Context) error {
		var left int64
		for _, p := range parts[next:] {
			left += int64(len(p))
		}
		last := nextOff + left - 1
		rng := fmt.Sprintf("bytes=%d-%d", nextOff, last)
		return s.fetch(ctx, s.blobURL(d), http.Header{"Range": {rng}}, func(resp *http.Response, body io.Reader) error {
			body, err := checkRangeAnswer(resp, body, nextOff, last, rng)
			if err != nil {
				return err
			}
			for next < len(parts) {
				if _, err := io.ReadFull(body, parts[next]); err != nil {
					return fmt.Errorf("read body of %s: %w", rng, unexpectedEOF(err))
				}
				done(next)
				nextOff += int64(len(parts[next]))
				next++
			}
			return nil
		})
	})
	switch {
	case err == nil:
		s.failed.forget(d, off, int(total))
	case errors.Is(err, context.DeadlineExceeded):
		s.failed.remember(d, off, int(total))
	}
	return err
}

// checkRangeAnswer checks the status and headers of the answer to a GET
// for bytes first..last and returns the body positioned at first and
// limited to the range. A blob that ends inside the range is ErrShortBlob.
func checkRangeAnswer(resp *http.Response, body io.Reader, first, last int64, rng string) (io.Reader, error) {
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		return nil, fmt.Errorf("%w: %s", ErrShortBlob, rng)
	}
	if err := checkStatus(resp, http.StatusPartialContent, http.StatusOK); err != nil {
		return nil, err
	}
	want := last - first + 1
	if resp.StatusCode == http.StatusOK {
		// The server ignored Range: skip to first, streaming, never buffering.
		if resp.ContentLength >= 0 && resp.ContentLength <= last {
			return nil, fmt.Errorf("%w: %s, the whole blob is %d bytes", ErrShortBlob, rng, resp.ContentLength)
		}
		if _, err := io.CopyN(io.Discard, body, first); err != nil {
			return nil, fmt.Errorf("skip to %d of a whole-blob answer: %w", first, unexpectedEOF(err))
		}
		return io.LimitReader(body, want), nil
	}
	f, l, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if f == first && total >= 0 && l == total-1 && l < last {
		return nil, fmt.Errorf("%w: %s, the blob is %d bytes", ErrShortBlob, rng, total)
	}
	if f != first || l != last {
		return nil, fmt.Errorf("%w: asked %s, got Content-Range %q", ErrBadResponse, rng, resp.Header.Get("Content-Range"))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return nil, fmt.Errorf("%w: asked %s (%d bytes), Content-Length is %d", ErrBadResponse, rng, want, resp.ContentLength)
	}
	return body, nil
}
