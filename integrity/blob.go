package integrity

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// DigestMismatchError: a blob's content does not hash to its digest.
type DigestMismatchError struct {
	Digest digest.Digest
	Got    digest.Digest
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("blob %s: content hashes to %s", e.Digest, e.Got)
}

// CheckBlob hashes all of r, the content of blob d, and returns a
// *DigestMismatchError when it does not match. It stops when ctx ends.
func CheckBlob(ctx context.Context, d digest.Digest, r io.Reader) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("check blob %q: %w", d, err)
	}
	h := d.Algorithm().Hash()
	if _, err := io.Copy(h, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("check blob %s: %w", d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return &DigestMismatchError{Digest: d, Got: got}
	}
	return nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
