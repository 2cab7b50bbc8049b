package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/osimagefs/osimagefs/image"
)

// errno turns an error from the data path into the errno the reader gets,
// and logs it once. An interrupted reader gets EINTR (nothing is wrong);
// everything else is EIO, because a read must never return wrong bytes and
// the reader cannot fix a network or registry fault.
func (r *Root) errno(ctx context.Context, op string, f image.File, off int64, err error) syscall.Errno {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		r.log.Debug("read interrupted", "op", op, "path", f.Path, "digest", f.Digest, "offset", off)
		return syscall.EINTR
	}
	r.log.Error("read failed", "op", op, "path", f.Path, "digest", f.Digest, "offset", off, "err", err)
	return syscall.EIO
}
