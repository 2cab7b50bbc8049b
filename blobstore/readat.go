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

// ReadAt fills p with the bytes of blob d starting at off, with one HTTP
// request for "bytes=off-(off+len(p)-1)" (retried while transient). Like
// io.ReaderAt it returns len(p) and nil, or fewer bytes and io.EOF when the
// blob ends inside the range (0 and io.EOF when off is at or past the end),
// or 0 and an error. The contents of p are undefined on error.
// A short, oversized or misplaced answer is an ErrBadResponse and nothing
// of it is returned. A server that ignores Range and answers 200 is read
// through to the range, streaming, without buffering the blob.
//
// Each attempt is abandoned (and retried) when nothing arrives for its
// stall timeout (see Options.StallTimeout). A read that failed at its
// deadline is remembered for a moment: a read of any of its bytes within
// recentFailure gets one quick attempt. (After a failed read-ahead the
// kernel at once reads the first page again by itself, which would
// otherwise make the reader wait for a second deadline.)
//
// ReadAt is safe for concurrent use. Cancel ctx to abandon the read.
func (s *Store) ReadAt(ctx context.Context, d digest.Digest, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset", d, off)
	}
	last := off + int64(len(p)) - 1
	rng := fmt.Sprintf("bytes=%d-%d", off, last)
	var n int
	what := fmt.Sprintf("read %s %s", d, rng)
	attempts := 0
	if ago, failed := s.failed.recent(d, off, len(p)); failed {
		attempts = 1
		ctx = context.WithValue(ctx, quickAttemptKey{}, true)
		what += fmt.Sprintf(" (one quick attempt: a read of these bytes failed at its deadline %s ago)", ago.Round(time.Millisecond))
	}
	err := s.retryN(ctx, what, attempts, func(ctx context.Context) error {
		var err error
		n, err = s.readRange(ctx, d, p, off, last, rng)
		return err
	})
	switch {
	case err == nil || errors.Is(err, errPastEnd):
		s.failed.forget(d, off, len(p))
	case errors.Is(err, context.DeadlineExceeded):
		s.failed.remember(d, off, len(p))
	}
	if errors.Is(err, errPastEnd) {
		return 0, io.EOF
	}
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// errPastEnd is a 416 answer: the range starts at or beyond the blob's end.
var errPastEnd = errors.New("range starts past the end of the blob")

// readRange is one attempt of ReadAt. It returns how many bytes of p it
// filled: len(p), or fewer when the blob ends inside the range.
func (s *Store) readRange(ctx context.Context, d digest.Digest, p []byte, off, last int64, rng string) (int, error) {
	var n int
	err := s.fetch(ctx, s.blobURL(d), http.Header{"Range": {rng}}, func(resp *http.Response, body io.Reader) error {
		var err error
		n, err = readRangeBody(resp, body, p, off, last, rng)
		return err
	})
	return n, err
}

// readRangeBody checks the answer to a range GET and reads its body into p.
func readRangeBody(resp *http.Response, body io.Reader, p []byte, off, last int64, rng string) (int, error) {
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		return 0, errPastEnd
	}
	if err := checkStatus(resp, http.StatusPartialContent, http.StatusOK); err != nil {
		return 0, err
	}
	want := int64(len(p))
	if resp.StatusCode == http.StatusOK {
		// The server ignored Range: skip to off, streaming, never buffering.
		if resp.ContentLength >= 0 {
			if resp.ContentLength <= off {
				return 0, errPastEnd
			}
			want = min(want, resp.ContentLength-off)
		}
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			return 0, fmt.Errorf("skip to %d of a whole-blob answer: %w", off, unexpectedEOF(err))
		}
		body = io.LimitReader(body, want)
	} else {
		first, l, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		// The blob may end inside the range: then the answer stops at its last byte.
		endsEarly := total >= 0 && l == total-1 && l < last
		if first != off || (l != last && !endsEarly) {
			return 0, fmt.Errorf("%w: asked %s, got Content-Range %q", ErrBadResponse, rng, resp.Header.Get("Content-Range"))
		}
		want = l - first + 1
		if resp.ContentLength >= 0 && resp.ContentLength != want {
			return 0, fmt.Errorf("%w: asked %s (%d bytes), Content-Length is %d", ErrBadResponse, rng, want, resp.ContentLength)
		}
	}
	if _, err := io.ReadFull(body, p[:want]); err != nil {
		return 0, fmt.Errorf("read body of %s: %w", rng, unexpectedEOF(err))
	}
	if resp.StatusCode == http.StatusPartialContent {
		var one [1]byte
		if n, _ := body.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: body of %s is longer than the range", ErrBadResponse, rng)
		}
	}
	return int(want), nil
}

// unexpectedEOF turns a clean EOF in the middle of a body into
// io.ErrUnexpectedEOF, which is retried.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
