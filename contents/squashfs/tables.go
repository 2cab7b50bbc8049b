package squashfs

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Entries per metadata block of the two-level tables.
const (
	idsPerBlock   = metaSize / 4
	fragsPerBlock = metaSize / 16
)

// tableIndex is the first level of a two-level table: the positions of
// the metadata blocks that hold its entries, read once on first use.
type tableIndex struct {
	name  string
	start int64 // where the index is; its blocks lie before it
	count int64 // entries in the table

	mu   sync.Mutex
	ptrs []int64 // nil until loaded; a failed load is tried again
}

// block returns the image offset of the metadata block holding entry i,
// with perBlock entries to a block.
func (t *tableIndex) block(ctx context.Context, f *fs, i, perBlock int64) (int64, error) {
	if i < 0 || i >= t.count {
		return 0, fmt.Errorf("squashfs: %s %d: %w: the table has %d", t.name, i, node.ErrCorrupt, t.count)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ptrs == nil {
		n := (t.count + perBlock - 1) / perBlock
		b := make([]byte, n*8)
		if err := f.readFull(ctx, b, t.start); err != nil {
			return 0, fmt.Errorf("squashfs: %s table index at %d: %w", t.name, t.start, err)
		}
		ptrs := make([]int64, n)
		for k := range ptrs {
			p := binary.LittleEndian.Uint64(b[8*k:])
			if p < f.sb.dirTable || p >= uint64(t.start) {
				return 0, fmt.Errorf("squashfs: %s table index at %d: %w: block %d at %d", t.name, t.start, node.ErrCorrupt, k, p)
			}
			ptrs[k] = int64(p)
		}
		t.ptrs = ptrs
	}
	return t.ptrs[i/perBlock], nil
}

// newTables sets up the id and fragment table indexes of sb, checking
// their sizes against the image and lim.
func (f *fs) newTables(lim node.Limits) error {
	sb := f.sb
	f.ids = &tableIndex{name: "id", start: int64(sb.idTable), count: int64(sb.idCount)}
	f.frags = &tableIndex{name: "fragment", start: int64(sb.fragTable), count: int64(sb.fragCount)}
	if int64(sb.fragCount) > int64(lim.Objects) {
		return fmt.Errorf("squashfs: superblock: %w: %d fragments, over the limit %d", node.ErrCorrupt, sb.fragCount, lim.Objects)
	}
	for _, t := range []struct {
		ti       *tableIndex
		perBlock int64
	}{{f.ids, idsPerBlock}, {f.frags, fragsPerBlock}} {
		if t.ti.count == 0 {
			continue
		}
		n := (t.ti.count + t.perBlock - 1) / t.perBlock * 8
		if t.ti.start+n > int64(sb.bytesUsed) {
			return fmt.Errorf("squashfs: superblock: %w: %s table index at %d of %d bytes past the end %d",
				node.ErrCorrupt, t.ti.name, t.ti.start, n, sb.bytesUsed)
		}
	}
	return nil
}

// id returns the uid or gid stored at index i of the id table.
func (f *fs) id(ctx context.Context, i uint16) (uint32, error) {
	blk, err := f.ids.block(ctx, f, int64(i), idsPerBlock)
	if err != nil {
		return 0, err
	}
	c := f.cursor(blk, int(i%idsPerBlock)*4, int64(f.sb.dirTable), f.ids.start)
	v, err := c.u32(ctx)
	if err != nil {
		return 0, fmt.Errorf("squashfs: id %d: %w", i, err)
	}
	return v, nil
}

// fragment is one fragment table entry: a block holding file tails.
type fragment struct {
	start int64
	size  uint32 // on-disk size, with the uncompressed bit
}

// fragment returns entry i of the fragment table.
func (f *fs) fragment(ctx context.Context, i uint32) (fragment, error) {
	blk, err := f.frags.block(ctx, f, int64(i), fragsPerBlock)
	if err != nil {
		return fragment{}, err
	}
	c := f.cursor(blk, int(i%fragsPerBlock)*16, int64(f.sb.dirTable), f.frags.start)
	var b [16]byte
	if err := c.read(ctx, b[:]); err != nil {
		return fragment{}, fmt.Errorf("squashfs: fragment %d: %w", i, err)
	}
	fr := fragment{start: int64(binary.LittleEndian.Uint64(b[0:])), size: binary.LittleEndian.Uint32(b[8:])}
	if err := f.checkBlock(fr.start, fr.size); err != nil {
		return fragment{}, fmt.Errorf("squashfs: fragment %d: %w", i, err)
	}
	return fr, nil
}
