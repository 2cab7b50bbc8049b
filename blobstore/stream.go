package blobstore

import (
	"context"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// StreamBlob reads blob d from its first byte: a GET without Range, whose
// body goes to fn with the size the registry declared (Content-Length, or
// -1 when it did not say). It is how to read a blob from a server that
// ignores Range (ErrRangeIgnored), where every range would stream the blob
// from its start anyway; nothing here buffers the body.
//
// fn may stop early and return nil: the body is then closed unread. When
// fn fails with an error that may go away on retry (a cut or stalled
// connection: io.ErrUnexpectedEOF, ...), the GET is sent again while ctx
// allows and fn is called again with a new body from byte 0: fn skips what
// it has already used. StreamBlob is safe for concurrent use.
//
// The mirrors that pull are asked first (one attempt each), the origin
// last.
func (s *Store) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	what := "stream " + d.String()
	attempt := func(ctx context.Context, e *endpoint) error {
		return s.fetch(ctx, e, e.url(s.repo.RepositoryStr(), "blobs", d.String()), nil, func(resp *http.Response, body io.Reader) error {
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			s.sent.record(d, 0, -1, e)
			cr := &countingReader{r: body}
			defer func() { s.observeBytes(e, cr.n) }()
			err := fn(cr, resp.ContentLength)
			if err != nil && !transient(err) {
				return stopError{err} // the caller's own: no other host cures it
			}
			return err
		})
	}
	if ok, err := s.fromMirrors(ctx, false, d, what, attempt); ok || err != nil {
		return err
	}
	err := s.retry(ctx, s.origin, what, func(ctx context.Context) error { return attempt(ctx, s.origin) })
	s.observeRequest(s.origin, err)
	return err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
