package squashfs

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// metaSize is the most bytes one metadata block holds decompressed.
const metaSize = 8192

// metaUncompressed marks a metadata block header whose block is stored as is.
const metaUncompressed = 0x8000

// metaKey is the blockcache key of the metadata block at off: negative,
// so that it never meets a data block's key, whatever the image says.
func metaKey(off int64) int64 { return -1 - off }

// metaBlock reads the metadata block at off, which must lie in [lo, hi),
// and returns its decompressed bytes and where the next block starts.
func (f *fs) metaBlock(ctx context.Context, off, lo, hi int64) (data []byte, next int64, err error) {
	if off < lo || off+2 > hi {
		return nil, 0, fmt.Errorf("squashfs: metadata block at %d: %w: outside its table [%d, %d)", off, node.ErrCorrupt, lo, hi)
	}
	// The cached value is the 2-byte header followed by the decompressed
	// bytes, so that a hit also knows where the next block starts.
	v, err := f.blocks.Get(metaKey(off), func() ([]byte, error) {
		var hdr [2]byte
		if err := f.readFull(ctx, hdr[:], off); err != nil {
			return nil, fmt.Errorf("squashfs: metadata block at %d: %w", off, err)
		}
		h := binary.LittleEndian.Uint16(hdr[:])
		n := int64(h &^ metaUncompressed)
		if n == 0 || n > metaSize || off+2+n > hi {
			return nil, fmt.Errorf("squashfs: metadata block at %d: %w: stored length %d", off, node.ErrCorrupt, n)
		}
		raw := make([]byte, 2+n)
		copy(raw, hdr[:])
		if err := f.readFull(ctx, raw[2:], off+2); err != nil {
			return nil, fmt.Errorf("squashfs: metadata block at %d: %w", off, err)
		}
		if h&metaUncompressed != 0 {
			return raw, nil
		}
		out, err := f.dec.decompress(raw[2:], metaSize)
		if err != nil {
			return nil, fmt.Errorf("squashfs: metadata block at %d: %w: %w", off, node.ErrCorrupt, err)
		}
		return append(hdr[:], out...), nil
	})
	if err != nil {
		return nil, 0, err
	}
	n := int64(binary.LittleEndian.Uint16(v) &^ metaUncompressed)
	return v[2:], off + 2 + n, nil
}

// metaCursor reads a byte stream that runs across metadata blocks of one
// table, from a block start and an offset in that block.
type metaCursor struct {
	f      *fs
	lo, hi int64 // the table's bounds
	block  int64 // where the current block starts
	off    int   // the next byte in data
	data   []byte
	next   int64 // where the block after this one starts
	loaded bool
}

// cursor returns a cursor at offset off of the block at block, in [lo, hi).
func (f *fs) cursor(block int64, off int, lo, hi int64) *metaCursor {
	return &metaCursor{f: f, lo: lo, hi: hi, block: block, off: off}
}

// read fills p from the stream.
func (c *metaCursor) read(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		if !c.loaded {
			data, next, err := c.f.metaBlock(ctx, c.block, c.lo, c.hi)
			if err != nil {
				return err
			}
			if c.off > len(data) {
				return fmt.Errorf("squashfs: metadata block at %d: %w: offset %d past its %d bytes", c.block, node.ErrCorrupt, c.off, len(data))
			}
			c.data, c.next, c.loaded = data, next, true
		}
		n := copy(p, c.data[c.off:])
		p, c.off = p[n:], c.off+n
		if len(p) > 0 || c.off == len(c.data) {
			c.block, c.off, c.loaded = c.next, 0, false
		}
	}
	return nil
}

// u32 reads one little-endian number.
func (c *metaCursor) u32(ctx context.Context) (uint32, error) {
	var b [4]byte
	err := c.read(ctx, b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}
