package fs

import (
	"context"
	"io"
	"os"
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
	mode mode // open files of a layer, by kind (passthrough.go)
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
	return n.openLayer(), fuse.FOPEN_KEEP_CACHE, 0
}

// openLayer opens a layer: handed to the kernel when its blob can be
// (passthrough.go) and no open of it is served by the daemon, or when
// other opens of it were handed over already; else served by the daemon.
func (n *fileNode) openLayer() gofs.FileHandle {
	h := handle{node: n, ra: newReadahead(n.root.opts.ReadAhead)}
	pt := &n.root.pt
	n.mode.mu.Lock()
	defer n.mode.mu.Unlock()
	if n.mode.cached == 0 {
		var f *os.File
		if n.mode.passed == 0 {
			f = pt.open(n.file.Digest)
		}
		if f != nil || n.mode.passed > 0 {
			n.mode.passed++
			if pt.on.Load() {
				n.root.opts.Observer.PassthroughOpened(n.file)
			}
			return &passHandle{handle: h, file: f}
		}
	}
	n.mode.cached++
	return &h
}

// handle is an open layer file served by the daemon: it tracks the
// reader's access pattern.
type handle struct {
	node *fileNode
	ra   *readahead
}

var (
	_ gofs.FileReleaser        = (*handle)(nil)
	_ gofs.FileReleaser        = (*passHandle)(nil)
	_ gofs.FilePassthroughFder = (*passHandle)(nil)
)

// Release counts the open gone.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.node.mode.mu.Lock()
	h.node.mode.cached--
	h.node.mode.mu.Unlock()
	return 0
}

// Release counts the open gone and closes the daemon's copy of the pinned
// file; the pin stays while the kernel holds the file.
func (h *passHandle) Release(ctx context.Context) syscall.Errno {
	h.node.mode.mu.Lock()
	h.node.mode.passed--
	h.node.mode.mu.Unlock()
	if h.file != nil {
		h.file.Close()
	}
	return 0
}

func (n *fileNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.root.opts.Observer.ReadRequest(n.file)
	if n.blob == nil {
		data := n.file.Data
		if off >= int64(len(data)) {
			return fuse.ReadResultData(nil), 0
		}
		part := data[off:min(int64(len(data)), off+int64(len(dest)))]
		n.root.opts.Observer.Served(n.file, len(part))
		return fuse.ReadResultData(part), 0
	}
	var h *handle
	switch fh := fh.(type) {
	case *handle:
		h = fh
	case *passHandle:
		h = &fh.handle
		if fh.handed.Load() {
			n.root.pt.refuse("the kernel sent a READ for a file handed to it", nil)
		}
	}
	if h != nil {
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
