package ext4

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

const (
	sIFDIR = syscall.S_IFDIR
	sIFLNK = syscall.S_IFLNK
	sIFREG = syscall.S_IFREG
)

// ReadAt reads regular file ino's content at off, with the io.ReaderAt
// contract.
func (f *fsys) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if in.typ() != sIFREG {
		return 0, fmt.Errorf("ext4: inode %d: %w", ino, node.ErrNotFile)
	}
	if off < 0 {
		return 0, fmt.Errorf("ext4: inode %d: negative offset %d", ino, off)
	}
	if off >= in.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), in.size-off))
	if err := f.readData(ctx, in, p[:n], off); err != nil {
		return 0, fmt.Errorf("file %d at %d: %w", ino, off, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readData fills p with in's content at off, which the caller keeps within
// in.size. Each run of consecutive blocks is one read of the image; holes
// and uninitialized extents are zeros.
func (f *fsys) readData(ctx context.Context, in *inode, p []byte, off int64) error {
	if in.inline != nil {
		copy(p, in.inline[off:])
		return nil
	}
	bs := f.sb.blockSize
	for len(p) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		lblk, within := uint64(off/bs), off%bs
		need := (uint64(within) + uint64(len(p)) + uint64(bs) - 1) / uint64(bs)
		var r run
		var err error
		if in.flags&flagExtents != 0 {
			r, err = f.mapExtent(ctx, in, lblk)
		} else {
			r, err = f.mapIndirect(ctx, in, lblk, need)
		}
		if err != nil {
			return err
		}
		count := min(r.count, need)
		n := int(min(int64(len(p)), int64(count)*bs-within))
		if r.zero {
			clear(p[:n])
		} else {
			if err := f.checkBlocks(r.phys, count, fmt.Sprintf("inode %d: data", in.ino)); err != nil {
				return err
			}
			if err := f.readFull(ctx, p[:n], int64(r.phys)*bs+within, fmt.Sprintf("inode %d: data block %d", in.ino, r.phys)); err != nil {
				return err
			}
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}
