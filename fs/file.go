package fs

import (
	"context"
	"io"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/osimagefs/osimagefs/image"
)

// fileNode is one file of the tree: a lazily read layer (blob != nil) or a
// document held in memory.
type fileNode struct {
	gofs.Inode
	root *Root
	file image.File
	blob BlobReader
}

var (
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeReader    = (*fileNode)(nil)

	_ gofs.NodeGetxattrer  = (*fileNode)(nil)
	_ gofs.NodeListxattrer = (*fileNode)(nil)
)

func (n *fileNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Nlink = 1
	out.Size = uint64(n.file.Size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 1 << 20
	n.root.commonAttr(&out.Attr)
	return 0
}

// Open refuses writing; the content never changes, so the kernel may keep
// its cached pages across opens.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.blob == nil {
		return nil, fuse.FOPEN_KEEP_CACHE, 0
	}
	return &handle{ra: newReadahead(n.root.opts.ReadAhead)}, fuse.FOPEN_KEEP_CACHE, 0
}

// handle is an open layer file: it tracks the reader's access pattern.
type handle struct {
	ra *readahead
}

func (n *fileNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if n.blob == nil {
		data := n.file.Data
		if off >= int64(len(data)) {
			return fuse.ReadResultData(nil), 0
		}
		part := data[off:min(int64(len(data)), off+int64(len(dest)))]
		n.root.opts.Observer.Served(n.file, len(part))
		return fuse.ReadResultData(part), 0
	}
	if h, ok := fh.(*handle); ok {
		if pf, ok := n.blob.(Prefetcher); ok {
			if from, size := h.ra.advance(off, int64(len(dest))); size > 0 {
				pf.Prefetch(from, size)
			}
		}
	}
	got, err := n.blob.ReadAt(ctx, dest, off)
	// Only the reader's own io.EOF means "end of file". A fetch error may
	// wrap io.EOF too (a connection closed early): that is an I/O error,
	// never a short file.
	if err != nil && err != io.EOF { //nolint:errorlint // identity on purpose
		return nil, n.root.errno(ctx, "read", n.file, off, err)
	}
	n.root.opts.Observer.Served(n.file, got)
	return fuse.ReadResultData(dest[:got]), 0
}
