package ext4

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/osimagefs/osimagefs/contents/node"
)

// corruptf is an error wrapping node.ErrCorrupt, prefixed with the package.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("ext4: %w: %s", node.ErrCorrupt, fmt.Sprintf(format, args...))
}

// readFull reads p at off of the image, which must lie within it: a range
// the image does not hold is ErrCorrupt, and so is a short read (the image
// is shorter than it said); other reader errors are wrapped as they are.
func (f *fsys) readFull(ctx context.Context, p []byte, off int64, what string) error {
	if off < 0 || off > f.size || int64(len(p)) > f.size-off {
		return corruptf("%s: %d bytes at %d past the image end %d", what, len(p), off, f.size)
	}
	n, err := f.r.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("%s: %d of %d bytes at %d: image shorter than it says (%v)", what, n, len(p), off, err)
	}
	return fmt.Errorf("ext4: %s: reading %d bytes at %d: %w", what, len(p), off, err)
}

// checkBlocks says whether count blocks from start lie within the file
// system and the image. Block 0 holds the boot sector and superblock, never
// a file's data or metadata.
func (f *fsys) checkBlocks(start, count uint64, what string) error {
	end := start + count
	if start == 0 || end < start || end > f.sb.blocksCount || end > uint64(f.size/f.sb.blockSize) {
		return corruptf("%s: blocks %d+%d outside the %d blocks of the file system (image %d bytes)",
			what, start, count, f.sb.blocksCount, f.size)
	}
	return nil
}

// metaBlock returns the block at blk, for an extent tree node or an
// indirect block, from the cache or the image. It must not be changed.
func (f *fsys) metaBlock(ctx context.Context, blk uint64, what string) ([]byte, error) {
	if b, ok := f.meta.Get(blk); ok {
		return b, nil
	}
	if err := f.checkBlocks(blk, 1, what); err != nil {
		return nil, err
	}
	b := make([]byte, f.sb.blockSize)
	if err := f.readFull(ctx, b, int64(blk)*f.sb.blockSize, what); err != nil {
		return nil, err
	}
	f.meta.Add(blk, b)
	return b, nil
}
