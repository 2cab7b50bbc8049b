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
func (s *Store) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	return s.retry(ctx, "stream "+d.String(), func(ctx context.Context) error {
		return s.fetch(ctx, s.blobURL(d), nil, func(resp *http.Response, body io.Reader) error {
			if err := checkStatus(resp, http.StatusOK); err != nil {
				return err
			}
			return fn(body, resp.ContentLength)
		})
	})
}
