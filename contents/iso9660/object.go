package iso9660

import (
	"context"
	"fmt"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// extent is one stretch of a file's data.
type extent struct{ block, length uint32 }

// object is one parsed record: a file (all its extents), directory or
// other node, with its Rock Ridge entries.
type object struct {
	rec     record // without its system use area
	extents []extent
	rock    rock
	name    string
}

func (o *object) dir() bool { return o.rec.flags&flagDir != 0 }

// span returns the bytes from pos to the end of pos's logical block:
// records never cross one.
type span func(ctx context.Context, pos int64) ([]byte, error)

// readSpan reads up to a whole record's worth from the image.
func (f *FS) readSpan(ctx context.Context, pos int64) ([]byte, error) {
	end := min((pos/f.bs+1)*f.bs, pos+255, f.size)
	if end <= pos {
		return nil, fmt.Errorf("iso9660: record at %d: %w: beyond the image", pos, node.ErrCorrupt)
	}
	b := make([]byte, end-pos)
	if err := f.read(ctx, b, pos, "directory record"); err != nil {
		return nil, err
	}
	return b, nil
}

// collect reads the record at pos and, for a multi-extent file, the
// records of its further extents; next is where the following record is.
func (f *FS) collect(ctx context.Context, at span, pos int64) (rec record, exts []extent, next int64, err error) {
	for {
		b, err := at(ctx, pos)
		if err != nil {
			return record{}, nil, 0, err
		}
		if len(b) == 0 || b[0] == 0 {
			if len(exts) == 0 {
				return record{}, nil, 0, fmt.Errorf("iso9660: record at %d: %w: empty", pos, node.ErrCorrupt)
			}
			pos = (pos/f.bs + 1) * f.bs // the rest of the block is padding
			continue
		}
		r, n := parseRecord(b)
		if n == 0 {
			return record{}, nil, 0, fmt.Errorf("iso9660: record at %d: %w: length %d in %d bytes", pos, node.ErrCorrupt, b[0], len(b))
		}
		if len(exts) == 0 {
			rec = r
		}
		exts = append(exts, extent{r.extent, r.length})
		pos += int64(n)
		if r.flags&flagMulti == 0 {
			return rec, exts, pos, nil
		}
		if len(exts) >= maxExtents {
			return record{}, nil, 0, fmt.Errorf("iso9660: record at %d: %w: over %d extents", pos, node.ErrCorrupt, maxExtents)
		}
	}
}

// object parses a collected record's Rock Ridge entries and name.
func (f *FS) object(ctx context.Context, rec record, exts []extent) (*object, error) {
	o := &object{rec: rec, extents: exts}
	if f.rr {
		var err error
		if o.rock, err = parseRock(ctx, rec.su, f.skip, f.continuation, f.lim.LinkBytes); err != nil {
			return nil, fmt.Errorf("iso9660: record of block %d: %w", rec.extent, err)
		}
	}
	o.rec.su = nil
	switch {
	case o.rock.hasName:
		o.name = o.rock.name
	case f.joliet:
		o.name = jolietName(rec.name)
	default:
		o.name = isoName(rec.name)
	}
	return o, nil
}

// continuation reads a Rock Ridge continuation area.
func (f *FS) continuation(ctx context.Context, block, offset, length uint32) ([]byte, error) {
	if int64(offset)+int64(length) > f.bs {
		return nil, fmt.Errorf("Rock Ridge continuation at block %d: %w: %d bytes at %d", block, node.ErrCorrupt, length, offset)
	}
	b := make([]byte, length)
	return b, f.read(ctx, b, int64(block)*f.bs+int64(offset), "Rock Ridge continuation")
}

// get returns the object of ino: cached by ReadDir, or read again where
// the Ino points.
func (f *FS) get(ctx context.Context, ino node.Ino) (*object, error) {
	if o, ok := f.objs.Get(ino); ok {
		return o, nil
	}
	pos := int64(ino) - 1
	if ino >= extentIno {
		f.mu.Lock()
		p, ok := f.links[ino]
		f.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("iso9660: ino %d: %w: not a hard link listed", ino, node.ErrCorrupt)
		}
		pos = p
	}
	if ino == 0 || pos >= f.size {
		return nil, fmt.Errorf("iso9660: ino %d: %w: beyond the image", ino, node.ErrCorrupt)
	}
	rec, exts, _, err := f.collect(ctx, f.readSpan, pos)
	if err != nil {
		return nil, err
	}
	o, err := f.object(ctx, rec, exts)
	if err != nil {
		return nil, err
	}
	f.objs.Add(ino, o)
	return o, nil
}

// mode is the object's st_mode: Rock Ridge's, or 0555/0444 without it.
func (o *object) mode() uint32 {
	if !o.rock.px {
		if o.dir() {
			return syscall.S_IFDIR | 0o555
		}
		return syscall.S_IFREG | 0o444
	}
	m := o.rock.mode
	switch {
	case o.dir():
		m = m&^syscall.S_IFMT | syscall.S_IFDIR
	case m&syscall.S_IFMT == syscall.S_IFDIR || m&syscall.S_IFMT == 0:
		m = m&^syscall.S_IFMT | syscall.S_IFREG
	}
	return m
}

// size is the sum of a file's extents.
func (o *object) size() int64 {
	var n int64
	for _, e := range o.extents {
		n += int64(e.length)
	}
	return n
}

// Attr returns what stat shows of ino.
func (f *FS) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	o, err := f.get(ctx, ino)
	if err != nil {
		return node.Attr{}, err
	}
	a := node.Attr{Mode: o.mode(), Mtime: o.rec.date, Nlink: 1, Size: o.size()}
	if o.rock.px {
		a.Uid, a.Gid, a.Nlink = o.rock.uid, o.rock.gid, max(o.rock.nlink, 1)
	}
	if o.rock.hasMtime {
		a.Mtime = o.rock.mtime
	}
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFLNK:
		a.Size = int64(len(o.rock.link))
	case syscall.S_IFCHR, syscall.S_IFBLK:
		a.Rdev = o.rock.rdev
	}
	return a, nil
}

// Readlink returns a Rock Ridge symlink's target.
func (f *FS) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	o, err := f.get(ctx, ino)
	if err != nil {
		return "", err
	}
	if o.mode()&syscall.S_IFMT != syscall.S_IFLNK {
		return "", fmt.Errorf("iso9660: ino %d: %w", ino, node.ErrNotLink)
	}
	return o.rock.link, nil
}
