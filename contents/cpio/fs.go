package cpio

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
)

// entry is one object of the index. Its Ino is its index + 1; the root is
// entry 0.
type entry struct {
	mode, uid, gid, nlink, mtime uint32
	rdev                         uint64
	// size is a file's length, a symlink's target length.
	size int64
	// seg is where a regular file's data is: -1 the image, at off; else
	// FS.segs[seg], at off in its decompressed stream.
	seg    int32
	off    int64
	target string
	// kids lists a directory; kidBytes adds up their names.
	kids     []node.DirEntry
	kidBytes int64
}

func (e *entry) isDir() bool { return e.mode&syscall.S_IFMT == syscall.S_IFDIR }

// FS is an initramfs image opened by Open.
type FS struct {
	r       node.ReaderAt
	size    int64
	entries []entry
	segs    []*segment
	space   blockcache.Space
	piece   int64
	cached  bool // space has a cache behind it
}

var _ node.FS = (*FS)(nil)

// Root is the "." directory.
func (f *FS) Root() node.Ino { return 1 }

func (f *FS) entry(ino node.Ino) (*entry, error) {
	if ino == 0 || uint64(ino) > uint64(len(f.entries)) {
		return nil, fmt.Errorf("cpio: no inode %d", ino)
	}
	return &f.entries[ino-1], nil
}

// Attr returns the attributes the member stored.
func (f *FS) Attr(_ context.Context, ino node.Ino) (node.Attr, error) {
	e, err := f.entry(ino)
	if err != nil {
		return node.Attr{}, err
	}
	return node.Attr{
		Mode: e.mode, Uid: e.uid, Gid: e.gid, Size: e.size,
		Mtime: time.Unix(int64(e.mtime), 0), Nlink: e.nlink, Rdev: e.rdev,
	}, nil
}

// ReadDir lists a directory in the order its members came.
func (f *FS) ReadDir(_ context.Context, ino node.Ino) ([]node.DirEntry, error) {
	e, err := f.entry(ino)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		return nil, node.ErrNotDir
	}
	return append([]node.DirEntry(nil), e.kids...), nil
}

// Readlink returns a symlink's target, the member's data.
func (f *FS) Readlink(_ context.Context, ino node.Ino) (string, error) {
	e, err := f.entry(ino)
	if err != nil {
		return "", err
	}
	if e.mode&syscall.S_IFMT != syscall.S_IFLNK {
		return "", node.ErrNotLink
	}
	return e.target, nil
}

// ReadAt reads a regular file: from the image for an uncompressed segment,
// through the block cache for a compressed one.
func (f *FS) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	e, err := f.entry(ino)
	if err != nil {
		return 0, err
	}
	if e.mode&syscall.S_IFMT != syscall.S_IFREG {
		return 0, node.ErrNotFile
	}
	if off < 0 {
		return 0, fmt.Errorf("cpio: inode %d: negative offset %d", ino, off)
	}
	if off >= e.size {
		return 0, io.EOF
	}
	short := false
	if rest := e.size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	var n int
	if e.seg < 0 {
		n, err = f.r.ReadAt(ctx, p, e.off+off)
		if err == io.EOF && n == len(p) {
			err = nil
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			err = fmt.Errorf("cpio: inode %d: reading %d bytes at %d: %w", ino, len(p), e.off+off, err)
		}
	} else {
		n, err = f.readSegment(ctx, f.segs[e.seg], p, e.off+off)
		if err != nil {
			err = fmt.Errorf("cpio: inode %d: %w", ino, err)
		}
	}
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}
