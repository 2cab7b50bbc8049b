package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrShortBlob: the blob ends before the range asked for. Retrying cannot
// help: its descriptor claims more bytes than the registry has. The error
// is a *ShortBlobError, which says where the blob ends.
var ErrShortBlob = errors.New("blob ends before the range asked for")

// ShortBlobError is ErrShortBlob with the blob's real size.
type ShortBlobError struct {
	Range string // the range asked for
	Total int64  // the blob's size, or -1 when the registry did not say
}

func (e *ShortBlobError) Error() string {
	if e.Total < 0 {
		return fmt.Sprintf("%s: %s", ErrShortBlob, e.Range)
	}
	return fmt.Sprintf("%s: %s, the blob is %d bytes", ErrShortBlob, e.Range, e.Total)
}

// BlobSize is the blob's real size (-1 when unknown); lazy recognises a
// short blob by this method.
func (e *ShortBlobError) BlobSize() int64 { return e.Total }

// Is makes errors.Is(err, ErrShortBlob) true.
func (e *ShortBlobError) Is(target error) bool { return target == ErrShortBlob }

// ReadParts fills the consecutive buffers parts with the bytes of blob d
// from off on, with one range request for all of them (retried while
// transient), and calls done(i) as soon as part i is filled, in order, so
// that a caller can hand the first parts to readers while the rest are
// still on the wire. A retry asks only for the parts not yet done. Headers
// (status, Content-Range, Content-Length) are checked before any part is
// filled, so a part is only ever done with the bytes of the range asked for.
//
// A server that ignores Range answers with the whole blob (200). From
// byte 0 that is the range and its start is used; past byte 0 ReadParts
// fails with ErrRangeIgnored instead of streaming up to the range, and for
// a while (rangeIgnoredFor) it fails so at once, without a request (read
// such a blob with StreamBlob).
//
// Parts are handed over as they arrive when the answer has a
// Content-Length (the transport then never reads past it). An answer
// without one (chunked) could carry more than the range, which makes all of
// it suspect: its parts are handed over only once its end is checked.
//
// Each attempt is abandoned (and retried) when nothing arrives for its
// stall timeout (see Options.StallTimeout). A read that failed at its
// deadline is remembered for a moment: a read of any of its bytes within
// recentFailure gets one quick attempt. (After a failed read-ahead the
// kernel at once reads the first page again by itself, which would
// otherwise make the reader wait for a second deadline.)
//
// It returns nil when every part is done, or the error that stopped it
// (ErrShortBlob when the blob ends inside the range). done is called from
// the caller's goroutine; parts already done stay done on error.
// ReadParts is safe for concurrent use. Cancel ctx to abandon the read.
func (s *Store) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) (err error) {
	if off < 0 {
		return fmt.Errorf("read %s at %d: negative offset", d, off)
	}
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
	rr := &rangeRead{d: d, parts: parts, lens: make([]int64, len(parts)), nextOff: off, done: done}
	if finished, err := s.readFromMirrors(ctx, rr); finished {
		return err
	}
	if rr.nextOff > 0 {
		if err := s.noRange.ignored(s.origin.host, time.Now()); err != nil {
			return fmt.Errorf("read %s at %d: %w", d, rr.nextOff, err)
		}
	}
	what := fmt.Sprintf("read %s bytes=%d-%d", d, rr.nextOff, off+total-1)
	attempts := 0
	if ago, failed := s.failed.recent(d, off, int(total)); failed {
		attempts = 1
		ctx = context.WithValue(ctx, quickAttemptKey{}, true)
		what += fmt.Sprintf(" (one quick attempt: a read of these bytes failed at its deadline %s ago)", ago.Round(time.Millisecond))
	}
	err = s.retryN(ctx, s.origin, what, attempts, func(ctx context.Context) error {
		handed := rr.handed
		err := s.readAttempt(ctx, s.origin, rr, nil)
		s.observeBytes(s.origin, rr.handed-handed)
		return err
	})
	s.observeRequest(s.origin, err)
	switch {
	case err == nil:
		s.failed.forget(d, off, int(total))
	case errors.Is(err, context.DeadlineExceeded):
		s.failed.remember(d, off, int(total))
	}
	return err
}

// rangeRead is one ReadParts call: its parts, and how far they are done.
// Its attempts, on one host or several, go on from the first part not done.
type rangeRead struct {
	d       digest.Digest
	parts   [][]byte
	lens    []int64 // bytes filled in each part
	next    int     // first part not done
	nextOff int64   // its offset in the blob
	handed  int64   // bytes of the parts done
	done    func(i int)
}

// readAttempt is one GET from e of the parts of rr not done yet. learned,
// if set, is told the status and Content-Length as soon as the headers
// are in.
//
// A whole-blob answer (200) past byte 0 is, from the origin, a server that
// ignores Range (ErrRangeIgnored). From a mirror, from any byte, it is a
// mirror filling the blob (errMirrorWhole), unless the blob is small
// enough to read through.
func (s *Store) readAttempt(ctx context.Context, e *endpoint, rr *rangeRead, learned func(status int, size int64)) error {
	if rr.next == len(rr.parts) {
		return nil // all handed over before an error at the very end
	}
	var left int64
	for _, p := range rr.parts[rr.next:] {
		left += int64(len(p))
	}
	first, last := rr.nextOff, rr.nextOff+left-1
	rng := fmt.Sprintf("bytes=%d-%d", first, last)
	return s.fetch(ctx, e, e.url(s.repo.RepositoryStr(), "blobs", rr.d.String()), http.Header{"Range": {rng}}, func(resp *http.Response, body io.Reader) error {
		if learned != nil {
			learned(resp.StatusCode, resp.ContentLength)
		}
		if resp.StatusCode == http.StatusOK && e.mirror && (resp.ContentLength < 0 || resp.ContentLength > smallWholeBlob) {
			// Even from byte 0: the stream is the mirror's fetch from the
			// origin, which costs the origin what is read of it.
			return fmt.Errorf("%w (%s): %s", errMirrorWhole, e.host, rng)
		}
		if resp.StatusCode == http.StatusOK && first > 0 {
			if !e.mirror {
				return s.rangeIgnored(resp)
			}
			// A small blob: read through to the range.
			if resp.ContentLength <= last {
				return &ShortBlobError{Range: rng, Total: resp.ContentLength}
			}
			if _, err := io.CopyN(io.Discard, body, first); err != nil {
				return fmt.Errorf("read body of %s up to %s: %w", rr.d, rng, unexpectedEOF(err))
			}
			// The rest of the body is the blob from the range on: check it
			// as a whole-blob answer for bytes 0..last-first.
			resp.ContentLength -= first
			body, first, last = io.LimitReader(body, resp.ContentLength), 0, last-first
		}
		body, avail, err := checkRangeAnswer(resp, body, first, last, rng)
		if err != nil {
			return err
		}
		s.sent.record(rr.d, rr.nextOff, avail, e) // before any part is handed over (distrust.go)
		stream := resp.ContentLength >= 0
		filled := rr.next // parts[next:filled] are filled, not yet done
		hand := func(upTo int) {
			for ; rr.next < upTo; rr.next++ {
				rr.done(rr.next)
				rr.nextOff += rr.lens[rr.next]
				rr.handed += rr.lens[rr.next]
			}
		}
		for filled < len(rr.parts) && avail > 0 {
			p := rr.parts[filled][:min(int64(len(rr.parts[filled])), avail)]
			if _, err := io.ReadFull(body, p); err != nil {
				return fmt.Errorf("read body of %s: %w", rng, unexpectedEOF(err))
			}
			avail -= int64(len(p))
			rr.lens[filled] = int64(len(p))
			filled++
			if stream {
				hand(filled)
			}
		}
		var one [1]byte
		if n, _ := body.Read(one[:]); n > 0 {
			return fmt.Errorf("%w: body of %s is longer than the range", ErrBadResponse, rng)
		}
		hand(filled)
		return nil
	})
}

// smallWholeBlob is the largest blob a mirror's whole-blob answer is read
// through for a range: cheaper than a request to the next host.
const smallWholeBlob = 1 << 20

// checkRangeAnswer checks the status and headers of the answer to a GET
// for bytes first..last and returns the body limited to the range, and how
// many bytes it holds. A blob that ends inside the range is a
// *ShortBlobError. A whole-blob answer (200) is taken as the range: the
// caller makes sure first is 0.
func checkRangeAnswer(resp *http.Response, body io.Reader, first, last int64, rng string) (io.Reader, int64, error) {
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		total := int64(-1)
		if _, t, ok := strings.Cut(resp.Header.Get("Content-Range"), "/"); ok {
			if n, err := parseNonNegative(strings.TrimSpace(t)); err == nil {
				total = n
			}
		}
		return nil, 0, &ShortBlobError{Range: rng, Total: total}
	}
	if err := checkStatus(resp, http.StatusPartialContent, http.StatusOK); err != nil {
		return nil, 0, err
	}
	want := last - first + 1
	if resp.StatusCode == http.StatusOK {
		// The server ignored Range: the blob from byte 0, the range first.
		if resp.ContentLength >= 0 && resp.ContentLength <= last {
			return nil, 0, &ShortBlobError{Range: rng, Total: resp.ContentLength}
		}
		return io.LimitReader(body, want), want, nil
	}
	f, l, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if f == first && total >= 0 && l == total-1 && l < last {
		return nil, 0, &ShortBlobError{Range: rng, Total: total}
	}
	if f != first || l != last {
		return nil, 0, fmt.Errorf("%w: asked %s, got Content-Range %q", ErrBadResponse, rng, resp.Header.Get("Content-Range"))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != want {
		return nil, 0, fmt.Errorf("%w: asked %s (%d bytes), Content-Length is %d", ErrBadResponse, rng, want, resp.ContentLength)
	}
	return body, want, nil
}

// unexpectedEOF turns a clean EOF in the middle of a body into
// io.ErrUnexpectedEOF, which is retried.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
