package fs

import (
	"syscall"

	"github.com/opencontainers/go-digest"
)

// InvalidateBlob makes the kernel drop the cached pages of every file
// whose content is blob d, so that the next read of it comes to the daemon
// again. Files keep their pages across opens (FOPEN_KEEP_CACHE); a blob
// that failed verification must not go on being served from them.
// It must not be called from inside a FUSE request.
func (r *Root) InvalidateBlob(d digest.Digest) {
	for _, n := range r.byDigest[d] {
		errno := n.NotifyContent(0, 0)
		if errno == syscall.ENOENT { // the kernel never looked it up: nothing cached
			continue
		}
		if errno != 0 {
			r.log.Warn("could not drop the kernel's cached pages", "path", n.file.Path, "digest", d, "err", errno)
			continue
		}
		r.log.Debug("dropped the kernel's cached pages", "path", n.file.Path, "digest", d)
	}
}
