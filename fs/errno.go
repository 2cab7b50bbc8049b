package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/osimagefs/osimagefs/contents"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/image"
)

// errno turns an error from the data path into the errno the reader gets,
// and logs it. An interrupted reader gets EINTR (nothing is wrong);
// everything else is EIO, because a read must never return wrong bytes and
// the reader cannot fix a network or registry fault. Failures are logged
// at most once per blob per failLogInterval (a registry outage fails every
// read), with the number of failed reads of that blob left unlogged since.
func (r *Root) errno(ctx context.Context, op string, f image.File, off int64, err error) syscall.Errno {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		r.log.Debug("read interrupted", "op", op, "path", f.Path, "digest", f.Digest, "offset", off)
		return syscall.EINTR
	}
	if suppressed, ok := r.failLog.allow(f.Digest, r.now()); ok {
		attrs := []any{"op", op, "path", f.Path, "digest", f.Digest, "offset", off, "err", err}
		if suppressed > 0 {
			attrs = append(attrs, "suppressed", suppressed)
		}
		r.log.Error("read failed", attrs...)
	}
	r.opts.Observer.ReadFailed(f, err)
	return syscall.EIO
}

// contentsErrno turns an error from inside a layer into an errno. What
// the image gets wrong is EIO, logged once per layer by its Tree; a name
// not there is ENOENT; a failed fetch is a read error of the layer like
// any other.
func (r *Root) contentsErrno(ctx context.Context, op string, f image.File, err error) syscall.Errno {
	switch {
	case contents.IsFetchError(err):
		return r.errno(ctx, op, f, -1, err)
	case errors.Is(err, syscall.ENOENT):
		return syscall.ENOENT
	case errors.Is(err, node.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, node.ErrNotLink), errors.Is(err, node.ErrNotFile):
		return syscall.EINVAL
	case errors.Is(err, node.ErrCorrupt):
		r.log.Debug("contents: corrupt", "op", op, "path", f.Path, "err", err)
		return syscall.EIO
	}
	return r.errno(ctx, op, f, -1, err)
}
