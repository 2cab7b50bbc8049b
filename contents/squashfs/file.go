package squashfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/osimagefs/osimagefs/contents/node"
)

// blockUncompressed marks a data block or fragment stored as is; the
// bits below it are the stored size, 0 for a hole.
const (
	blockUncompressed = 1 << 24
	blockSizeMask     = blockUncompressed - 1
)

// chunkLen is how many block list entries one checkpoint covers and one
// file keeps decoded (2 KiB).
const chunkLen = 512

// fileInode is a regular file: where its blocks are, read lazily from its
// block list, one chunk at a time, so a huge file costs no huge list.
type fileInode struct {
	size    int64
	nblocks int64 // full blocks in the list; the tail may be a fragment
	frag    uint32
	fragOff uint32

	mu      sync.Mutex
	points  []checkpoint // points[j] is where entry j*chunkLen is
	chunkAt int64        // which chunk chunk holds, -1 for none
	chunk   []uint32
	fr      *fragment // the tail's fragment entry, once looked up
}

// checkpoint is where one chunk of the block list starts, in the inode
// table and in the image.
type checkpoint struct {
	block int64 // metadata block of the entry
	off   int   // offset of the entry in that block
	disk  int64 // where its data block starts in the image
}

// parseFile reads a basic or extended file inode's body, after its
// header, and leaves c at the block list.
func (f *fs) parseFile(ctx context.Context, c *metaCursor, ext bool, a *node.Attr) (*fileInode, error) {
	le := binary.LittleEndian
	var start, size uint64
	fi := &fileInode{chunkAt: -1}
	if ext {
		var b [40]byte
		if err := c.read(ctx, b[:]); err != nil {
			return nil, err
		}
		start, size = le.Uint64(b[0:]), le.Uint64(b[8:])
		a.Nlink, fi.frag, fi.fragOff = le.Uint32(b[24:]), le.Uint32(b[28:]), le.Uint32(b[32:])
	} else {
		var b [16]byte
		if err := c.read(ctx, b[:]); err != nil {
			return nil, err
		}
		start, fi.frag, fi.fragOff, size = uint64(le.Uint32(b[0:])), le.Uint32(b[4:]), le.Uint32(b[8:]), uint64(le.Uint32(b[12:]))
		a.Nlink = 1
	}
	if start > f.sb.bytesUsed || size >= 1<<62 {
		return nil, fmt.Errorf("%w: blocks at %d, size %d", node.ErrCorrupt, start, size)
	}
	bs := uint64(f.sb.blockSize)
	fi.size, a.Size = int64(size), int64(size)
	if fi.frag == noFragment {
		fi.nblocks = int64((size + bs - 1) / bs)
	} else {
		fi.nblocks = int64(size / bs)
		if size%bs == 0 {
			fi.frag = noFragment // nothing is left for a tail
		}
	}
	if fi.nblocks > int64(f.lim.Objects) {
		return nil, fmt.Errorf("%w: %d blocks, over the limit %d", node.ErrCorrupt, fi.nblocks, f.lim.Objects)
	}
	// Each metadata block is at least 3 bytes on disk and 8 KiB decoded:
	// the list must fit in what is left of the inode table.
	if room := (int64(f.sb.dirTable)-c.block)/3*metaSize + metaSize; fi.nblocks*4 > room {
		return nil, fmt.Errorf("%w: %d blocks do not fit in the inode table", node.ErrCorrupt, fi.nblocks)
	}
	fi.points = []checkpoint{{block: c.block, off: c.off, disk: int64(start)}}
	return fi, nil
}

// entry returns block list entry i and where its data starts in the image.
func (f *fs) entry(ctx context.Context, fi *fileInode, i int64) (uint32, int64, error) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	j := i / chunkLen
	for int64(len(fi.points)) <= j {
		last := int64(len(fi.points)) - 1
		if err := f.loadChunk(ctx, fi, last); err != nil {
			return 0, 0, err
		}
	}
	if fi.chunkAt != j {
		if err := f.loadChunk(ctx, fi, j); err != nil {
			return 0, 0, err
		}
	}
	disk := fi.points[j].disk
	for _, e := range fi.chunk[:i-j*chunkLen] {
		disk += int64(e & blockSizeMask)
	}
	return fi.chunk[i-j*chunkLen], disk, nil
}

// loadChunk reads chunk j of the block list into fi.chunk, checks its
// entries, and records the checkpoint of chunk j+1 if it is new.
func (f *fs) loadChunk(ctx context.Context, fi *fileInode, j int64) error {
	p := fi.points[j]
	n := min(chunkLen, fi.nblocks-j*chunkLen)
	c := f.cursor(p.block, p.off, int64(f.sb.inodeTable), int64(f.sb.dirTable))
	b := make([]byte, 4*n)
	if err := c.read(ctx, b); err != nil {
		return fmt.Errorf("squashfs: block list: %w", err)
	}
	chunk := make([]uint32, n)
	disk := p.disk
	for k := range chunk {
		e := binary.LittleEndian.Uint32(b[4*k:])
		if e&^blockUncompressed > f.sb.blockSize {
			return fmt.Errorf("squashfs: block list entry %d: %w: stored size %#x", j*chunkLen+int64(k), node.ErrCorrupt, e)
		}
		chunk[k] = e
		disk += int64(e & blockSizeMask)
	}
	fi.chunk, fi.chunkAt = chunk, j
	if int64(len(fi.points)) == j+1 && (j+1)*chunkLen < fi.nblocks {
		fi.points = append(fi.points, checkpoint{block: c.block, off: c.off, disk: disk})
	}
	return nil
}

// checkBlock checks that a data block or fragment of stored size e at
// off lies in the image and is no larger than a block.
func (f *fs) checkBlock(off int64, e uint32) error {
	n := int64(e &^ blockUncompressed)
	if n > int64(f.sb.blockSize) || off < 0 || off+n > int64(f.sb.bytesUsed) {
		return fmt.Errorf("%w: block of stored size %#x at %d", node.ErrCorrupt, e, off)
	}
	return nil
}

// dataBlock returns the decompressed data block or fragment block of
// stored size e at off, from the cache or the image.
func (f *fs) dataBlock(ctx context.Context, off int64, e uint32) ([]byte, error) {
	if err := f.checkBlock(off, e); err != nil {
		return nil, err
	}
	return f.blocks.Get(off, func() ([]byte, error) {
		raw := make([]byte, e&blockSizeMask)
		if err := f.readFull(ctx, raw, off); err != nil {
			return nil, fmt.Errorf("squashfs: data block at %d: %w", off, err)
		}
		if e&blockUncompressed != 0 {
			return raw, nil
		}
		out, err := f.dec.decompress(raw, int(f.sb.blockSize))
		if err != nil {
			return nil, fmt.Errorf("squashfs: data block at %d: %w: %w", off, node.ErrCorrupt, err)
		}
		return out, nil
	})
}

// tail returns the bytes of a file's last, partial block, stored in a fragment.
func (f *fs) tail(ctx context.Context, fi *fileInode) ([]byte, error) {
	fi.mu.Lock()
	fr := fi.fr
	fi.mu.Unlock()
	if fr == nil {
		v, err := f.fragment(ctx, fi.frag)
		if err != nil {
			return nil, err
		}
		fr = &v
		fi.mu.Lock()
		fi.fr = fr
		fi.mu.Unlock()
	}
	data, err := f.dataBlock(ctx, fr.start, fr.size)
	if err != nil {
		return nil, err
	}
	n := fi.size - fi.nblocks*int64(f.sb.blockSize)
	if int64(fi.fragOff)+n > int64(len(data)) {
		return nil, fmt.Errorf("squashfs: fragment %d: %w: tail of %d bytes at %d past its %d bytes", fi.frag, node.ErrCorrupt, n, fi.fragOff, len(data))
	}
	return data[fi.fragOff : int64(fi.fragOff)+n], nil
}

// block returns the bytes of block b of a file, or nil for a hole.
func (f *fs) block(ctx context.Context, fi *fileInode, b int64) ([]byte, error) {
	bs := int64(f.sb.blockSize)
	if b >= fi.nblocks {
		return f.tail(ctx, fi)
	}
	e, disk, err := f.entry(ctx, fi, b)
	if err != nil {
		return nil, err
	}
	if e&blockSizeMask == 0 {
		return nil, nil
	}
	data, err := f.dataBlock(ctx, disk, e)
	if err != nil {
		return nil, err
	}
	want := min(bs, fi.size-b*bs)
	if int64(len(data)) < want {
		return nil, fmt.Errorf("squashfs: data block %d at %d: %w: %d bytes, want %d", b, disk, node.ErrCorrupt, len(data), want)
	}
	return data[:want], nil
}

// readFile reads p from a file's content at off.
func (f *fs) readFile(ctx context.Context, fi *fileInode, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("squashfs: negative offset")
	}
	if off >= fi.size {
		return 0, io.EOF
	}
	bs := int64(f.sb.blockSize)
	n := 0
	for n < len(p) && off < fi.size {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		b, within := off/bs, off%bs
		data, err := f.block(ctx, fi, b)
		if err != nil {
			return n, err
		}
		k := int(min(int64(len(p)-n), min(bs, fi.size-b*bs)-within))
		if data == nil {
			clear(p[n : n+k])
		} else {
			copy(p[n:n+k], data[within:])
		}
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
