package fs

import (
	"context"
	"strconv"
	"syscall"
)

// The extended attributes osimagefs answers. Each file has the first
// three (a document has no digest of its own when it was not a blob); the
// mount's root has the status.
const (
	XattrDigest    = "user.osimagefs.digest"
	XattrMediaType = "user.osimagefs.mediatype"
	XattrCached    = "user.osimagefs.cached" // bytes of the file that are local, in decimal
	XattrStatus    = "user.osimagefs.status" // the mount's status, JSON (Options.Status)
)

// CachedCounter is a BlobReader that can tell how many of its bytes are
// local without fetching anything; lazy.Blob is one.
type CachedCounter interface {
	CachedBytes() int64
}

// Getxattr answers the osimagefs attributes of a file.
func (n *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, ok := n.xattr(attr)
	if !ok {
		return 0, syscall.ENODATA
	}
	return copyXattr(dest, v)
}

// Listxattr lists the attributes Getxattr answers.
func (n *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names := []string{XattrMediaType, XattrCached}
	if n.file.Digest != "" {
		names = append([]string{XattrDigest}, names...)
	}
	return listXattr(dest, names)
}

// xattr is the value of attribute attr of the file.
func (n *fileNode) xattr(attr string) ([]byte, bool) {
	switch attr {
	case XattrDigest:
		if n.file.Digest == "" {
			return nil, false
		}
		return []byte(n.file.Digest.String()), true
	case XattrMediaType:
		return []byte(n.file.MediaType), true
	case XattrCached:
		return []byte(strconv.FormatInt(n.cachedBytes(), 10)), true
	}
	return nil, false
}

// cachedBytes is how many bytes of the file are local: all of a document,
// and what the blob reader says of a layer (0 if it cannot tell).
func (n *fileNode) cachedBytes() int64 {
	if n.blob == nil {
		return n.file.Size
	}
	if c, ok := n.blob.(CachedCounter); ok {
		return c.CachedBytes()
	}
	return 0
}

// Getxattr answers the mount's status on the root.
func (r *Root) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != XattrStatus || r.opts.Status == nil {
		return 0, syscall.ENODATA
	}
	return copyXattr(dest, r.opts.Status())
}

// Listxattr lists the root's status attribute, if it has one.
func (r *Root) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if r.opts.Status == nil {
		return 0, 0
	}
	return listXattr(dest, []string{XattrStatus})
}

// CachedBytes is how many bytes of the tree's layers are local, each blob
// counted once however many files show it.
func (r *Root) CachedBytes() int64 {
	var total int64
	for _, nodes := range r.byDigest {
		total += nodes[0].cachedBytes()
	}
	return total
}

// copyXattr copies v into dest, or asks for a larger buffer (ERANGE with
// the size needed; go-fuse turns that into the size for a size query).
func copyXattr(dest, v []byte) (uint32, syscall.Errno) {
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// listXattr writes names, each NUL-terminated, into dest.
func listXattr(dest []byte, names []string) (uint32, syscall.Errno) {
	var b []byte
	for _, name := range names {
		b = append(append(b, name...), 0)
	}
	return copyXattr(dest, b)
}
