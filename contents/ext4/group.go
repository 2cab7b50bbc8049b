package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
)

// inodeTable returns the first block of group g's inode table, from the
// cache of parsed group descriptors or from the descriptor itself.
func (f *fsys) inodeTable(ctx context.Context, g uint64) (uint64, error) {
	if blk, ok := f.groups.Get(g); ok {
		return blk, nil
	}
	off := f.sb.descOffset(g)
	b := make([]byte, f.sb.descSize)
	what := fmt.Sprintf("group %d descriptor at %d", g, off)
	if err := f.readFull(ctx, b, off, what); err != nil {
		return 0, err
	}
	blk := parseInodeTable(b)
	tableBlocks := (uint64(f.sb.inodesPerGroup)*uint64(f.sb.inodeSize) + uint64(f.sb.blockSize) - 1) / uint64(f.sb.blockSize)
	// Only the file system's end: a truncated image fails when an inode
	// past its end is read.
	if blk == 0 || blk+tableBlocks < blk || blk+tableBlocks > f.sb.blocksCount {
		return 0, corruptf("%s: inode table at blocks %d+%d outside the %d blocks of the file system", what, blk, tableBlocks, f.sb.blocksCount)
	}
	f.groups.Add(g, blk)
	return blk, nil
}

// parseInodeTable decodes the inode table block of a group descriptor of 32
// bytes, or of 64 and more with the high half.
func parseInodeTable(b []byte) uint64 {
	le := binary.LittleEndian
	blk := uint64(le.Uint32(b[0x8:]))
	if len(b) >= 64 {
		blk |= uint64(le.Uint32(b[0x28:])) << 32
	}
	return blk
}
