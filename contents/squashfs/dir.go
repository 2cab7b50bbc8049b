package squashfs

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Directory listing limits of the format.
const (
	dirHeaderLen = 12
	dirEntryLen  = 8
	dirMaxCount  = 256 // entries after one header
	nameMax      = 256
)

// ReadDir lists a directory in stored order. The listing is read as a
// stream of headers and entries bounded by the inode's size, so a bad
// header chain ends when the bytes do.
func (f *fs) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return nil, err
	}
	if in.attr.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, node.ErrNotDir
	}
	ents, err := f.readDir(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("squashfs: directory %d: %w", ino, err)
	}
	return ents, nil
}

func (f *fs) readDir(ctx context.Context, in *inode) ([]node.DirEntry, error) {
	// The stored size counts 3 bytes for "." and "..", which are not stored.
	left := int64(in.dirSize) - 3
	if left <= 0 {
		return nil, nil
	}
	if left > f.lim.DirBytes {
		return nil, fmt.Errorf("%w: listing of %d bytes, over the limit %d", node.ErrCorrupt, left, f.lim.DirBytes)
	}
	lo, hi := int64(f.sb.dirTable), int64(f.sb.dirTableEnd())
	if int64(in.dirBlock) >= hi-lo {
		return nil, fmt.Errorf("%w: listing at block %d, past the directory table", node.ErrCorrupt, in.dirBlock)
	}
	c := f.cursor(lo+int64(in.dirBlock), int(in.dirOff), lo, hi)
	le := binary.LittleEndian
	var ents []node.DirEntry
	var name [nameMax]byte
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var h [dirHeaderLen]byte
		if left < dirHeaderLen {
			return nil, fmt.Errorf("%w: %d bytes left, too few for a header", node.ErrCorrupt, left)
		}
		if err := c.read(ctx, h[:]); err != nil {
			return nil, err
		}
		left -= dirHeaderLen
		count, start := int64(le.Uint32(h[0:]))+1, le.Uint32(h[4:])
		if count > dirMaxCount {
			return nil, fmt.Errorf("%w: header of %d entries", node.ErrCorrupt, count)
		}
		for range count {
			var e [dirEntryLen]byte
			if left < dirEntryLen {
				return nil, fmt.Errorf("%w: %d bytes left, too few for an entry", node.ErrCorrupt, left)
			}
			if err := c.read(ctx, e[:]); err != nil {
				return nil, err
			}
			off, n := le.Uint16(e[0:]), int64(le.Uint16(e[6:]))+1
			left -= dirEntryLen + n
			if n > nameMax || left < 0 {
				return nil, fmt.Errorf("%w: name of %d bytes", node.ErrCorrupt, n)
			}
			if err := c.read(ctx, name[:n]); err != nil {
				return nil, err
			}
			ino, ok := inoOf(uint64(start), off)
			if !ok {
				return nil, fmt.Errorf("%w: entry %q names inode block %d offset %d", node.ErrCorrupt, name[:n], start, off)
			}
			if len(ents) >= f.lim.Entries {
				return nil, fmt.Errorf("%w: more than %d entries", node.ErrCorrupt, f.lim.Entries)
			}
			ents = append(ents, node.DirEntry{Name: string(name[:n]), Ino: ino})
		}
	}
	return ents, nil
}
