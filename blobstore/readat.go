package blobstore

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/opencontainers/go-digest"
)

// ReadAt fills p with the bytes of blob d starting at off, with one HTTP
// request for "bytes=off-(off+len(p)-1)" (retried while transient). It
// returns len(p) or an error; the caller keeps the range inside the blob.
// A short, oversized or misplaced answer is an ErrBadResponse and nothing
// of it is returned. A server that ignores Range and answers 200 is read
// through to the range, streaming, without buffering the blob.
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
	err := s.retry(ctx, fmt.Sprintf("read %s %s", d, rng), func(ctx context.Context) error {
		return s.readRange(ctx, d, p, off, last, rng)
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// readRange is one attempt of ReadAt.
func (s *Store) readRange(ctx context.Context, d digest.Digest, p []byte, off, last int64, rng string) error {
	resp, err := s.get(ctx, s.blobURL(d), http.Header{"Range": {rng}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp, http.StatusPartialContent, http.StatusOK); err != nil {
		return err
	}
	body := io.Reader(resp.Body)
	if resp.StatusCode == http.StatusOK {
		// The server ignored Range: skip to off, streaming.
		if resp.ContentLength >= 0 && resp.ContentLength <= last {
			return fmt.Errorf("%w: range %s asked, server sent the whole blob of %d bytes", ErrBadResponse, rng, resp.ContentLength)
		}
		if _, err := io.CopyN(io.Discard, body, off); err != nil {
			return fmt.Errorf("skip to %d of a whole-blob answer: %w", off, unexpectedEOF(err))
		}
	} else {
		first, l, _, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadResponse, err)
		}
		if first != off || l != last {
			return fmt.Errorf("%w: asked %s, got Content-Range %q", ErrBadResponse, rng, resp.Header.Get("Content-Range"))
		}
		if resp.ContentLength >= 0 && resp.ContentLength != int64(len(p)) {
			return fmt.Errorf("%w: asked %s (%d bytes), Content-Length is %d", ErrBadResponse, rng, len(p), resp.ContentLength)
		}
	}
	if _, err := io.ReadFull(body, p); err != nil {
		return fmt.Errorf("read body of %s: %w", rng, unexpectedEOF(err))
	}
	if resp.StatusCode == http.StatusPartialContent {
		var one [1]byte
		if n, _ := body.Read(one[:]); n > 0 {
			return fmt.Errorf("%w: body of %s is longer than the range", ErrBadResponse, rng)
		}
	}
	return nil
}

// unexpectedEOF turns a clean EOF in the middle of a body into
// io.ErrUnexpectedEOF, which is retried.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
