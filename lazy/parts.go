package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// rangeParts is the PartReader of a source that can only ReadAt: one
// request for all the parts, which are handed over when it is complete.
type rangeParts struct{ RangeReader }

func (r rangeParts) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	buf := parts[0]
	if len(parts) > 1 {
		var total int
		for _, p := range parts {
			total += len(p)
		}
		buf = make([]byte, total)
	}
	got, err := r.ReadAt(ctx, d, buf, off)
	if got != len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: it ends at byte %d", ErrBlobSize, off+int64(got))
		}
		return err
	}
	for i, p := range parts {
		if len(parts) > 1 {
			buf = buf[copy(p, buf):]
		}
		done(i)
	}
	return nil
}
