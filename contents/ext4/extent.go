package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
)

// Extent tree layout: a 12-byte header, then 12-byte index entries (inner
// nodes) or extents (leaves). The root is in i_block; the kernel never
// builds a tree deeper than maxExtentDepth.
const (
	extentMagic      = 0xF30A
	extentEntrySize  = 12
	maxExtentDepth   = 5
	maxInitExtentLen = 32768
	// logicalBlocks is the first logical block an extent cannot map.
	logicalBlocks = uint64(1) << 32
)

// run is a stretch of a file's logical blocks that is stored in one piece:
// count blocks from phys, or zeros (a hole or an uninitialized extent).
type run struct {
	phys  uint64
	count uint64
	zero  bool
}

// extentHeader is a checked extent tree node header.
type extentHeader struct {
	entries int
	depth   int
}

func parseExtentHeader(b []byte) (extentHeader, error) {
	le := binary.LittleEndian
	if len(b) < extentEntrySize || le.Uint16(b) != extentMagic {
		return extentHeader{}, fmt.Errorf("no extent header magic")
	}
	h := extentHeader{entries: int(le.Uint16(b[2:])), depth: int(le.Uint16(b[6:]))}
	if max := int(le.Uint16(b[4:])); h.entries > max || extentEntrySize*(1+max) > len(b) {
		return extentHeader{}, fmt.Errorf("%d of at most %d entries in a node of %d bytes", h.entries, max, len(b))
	}
	if h.depth > maxExtentDepth {
		return extentHeader{}, fmt.Errorf("depth %d over %d", h.depth, maxExtentDepth)
	}
	return h, nil
}

// mapExtent finds the run of logical block lblk in in's extent tree,
// reading the tree nodes on the way down. A block no extent maps is a hole
// that lasts until the next extent (or the end of the tree).
func (f *fsys) mapExtent(ctx context.Context, in *inode, lblk uint64) (run, error) {
	if lblk >= logicalBlocks {
		return run{count: ^uint64(0) - lblk, zero: true}, nil
	}
	le := binary.LittleEndian
	b := in.iblock[:]
	where := "i_block"
	end := logicalBlocks // the first logical block after this node's range
	want := -1           // the depth this node must have; -1 for the root
	for {
		h, err := parseExtentHeader(b)
		if err != nil {
			return run{}, corruptf("inode %d: extent node in %s: %v", in.ino, where, err)
		}
		if want >= 0 && h.depth != want {
			return run{}, corruptf("inode %d: extent node in %s: depth %d, want %d (a loop?)", in.ino, where, h.depth, want)
		}
		entry := func(i int) []byte { return b[extentEntrySize*(1+i):] }
		if h.depth == 0 {
			return f.mapLeaf(in, lblk, end, h.entries, entry, where)
		}
		// The last index entry starting at or before lblk covers it.
		i := -1
		for j := range h.entries {
			start := uint64(le.Uint32(entry(j)))
			if start > lblk {
				end = min(end, start)
				break
			}
			i = j
		}
		if i < 0 {
			return run{count: end - lblk, zero: true}, nil
		}
		e := entry(i)
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		where = fmt.Sprintf("block %d", child)
		if b, err = f.metaBlock(ctx, child, fmt.Sprintf("inode %d: extent node", in.ino)); err != nil {
			return run{}, err
		}
		want = h.depth - 1
	}
}

// mapLeaf finds lblk among the extents of a leaf whose range ends at end.
func (f *fsys) mapLeaf(in *inode, lblk, end uint64, n int, entry func(int) []byte, where string) (run, error) {
	le := binary.LittleEndian
	for i := range n {
		e := entry(i)
		start := uint64(le.Uint32(e))
		length := uint64(le.Uint16(e[4:]))
		phys := uint64(le.Uint32(e[8:])) | uint64(le.Uint16(e[6:]))<<32
		uninit := length > maxInitExtentLen
		if uninit {
			length -= maxInitExtentLen
		}
		if length == 0 {
			continue
		}
		if lblk < start {
			end = min(end, start)
			continue
		}
		if lblk >= start+length {
			continue
		}
		if err := f.checkBlocks(phys, length, fmt.Sprintf("inode %d: extent %d in %s", in.ino, i, where)); err != nil {
			return run{}, err
		}
		return run{phys: phys + lblk - start, count: start + length - lblk, zero: uninit}, nil
	}
	return run{count: end - lblk, zero: true}, nil
}
