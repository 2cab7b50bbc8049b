package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
)

// The classic ext2/3 block map: 12 direct block pointers in i_block, then
// one single, one double and one triple indirect block.
const directBlocks = 12

// mapIndirect finds the run of logical block lblk in in's block map,
// reading the indirect blocks on the way. A run stops at the end of the
// pointer block it is in, or after limit blocks. A 0 pointer is a hole.
func (f *fsys) mapIndirect(ctx context.Context, in *inode, lblk, limit uint64) (run, error) {
	le := binary.LittleEndian
	per := uint64(f.sb.blockSize / 4)
	ptrs := in.iblock[:]
	if lblk < directBlocks {
		return scanPointers(ptrs[:4*directBlocks], lblk, limit), nil
	}
	// Find the tree (single, double, triple) holding lblk and its index in it.
	rel := lblk - directBlocks
	span := per // the blocks one tree maps
	levels := 1
	for ; levels <= 3 && rel >= span; levels++ {
		rel -= span
		span *= per
	}
	if levels > 3 {
		return run{count: max(limit, 1), zero: true}, nil
	}
	blk := uint64(le.Uint32(ptrs[4*(directBlocks+levels-1):]))
	for level := levels; ; level-- {
		span /= per // the blocks one pointer of this level maps
		if blk == 0 {
			// A missing pointer block: a hole to the end of what it maps.
			return run{count: span*per - rel, zero: true}, nil
		}
		b, err := f.metaBlock(ctx, blk, fmt.Sprintf("inode %d: indirect block (level %d)", in.ino, level))
		if err != nil {
			return run{}, err
		}
		if level == 1 {
			return scanPointers(b, rel, limit), nil
		}
		blk = uint64(le.Uint32(b[4*(rel/span):]))
		rel %= span
	}
}

// scanPointers returns the run at index i of the 32-bit block pointers in
// b: the pointers after it that continue it (consecutive blocks, or zeros),
// up to limit of them.
func scanPointers(b []byte, i, limit uint64) run {
	le := binary.LittleEndian
	n := uint64(len(b) / 4)
	first := uint64(le.Uint32(b[4*i:]))
	r := run{phys: first, count: 1, zero: first == 0}
	for j := i + 1; j < n && r.count < limit; j++ {
		p := uint64(le.Uint32(b[4*j:]))
		if (first == 0 && p != 0) || (first != 0 && p != first+r.count) {
			break
		}
		r.count++
	}
	return r
}
