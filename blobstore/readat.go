package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// ReadAt fills p with the bytes of blob d starting at off, with one HTTP
// request for "bytes=off-(off+len(p)-1)" (retried while transient; it is
// ReadParts with one part). Like
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
	got, err := s.readParts(ctx, d, [][]byte{p}, off, func(int) {}, true)
	if errors.Is(err, ErrShortBlob) { // the range starts at or past the end
		return 0, io.EOF
	}
	if err != nil {
		return 0, err
	}
	if got < int64(len(p)) {
		return int(got), io.EOF
	}
	return len(p), nil
}

// unexpectedEOF turns a clean EOF in the middle of a body into
// io.ErrUnexpectedEOF, which is retried.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
