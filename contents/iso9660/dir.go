package iso9660

import (
	"context"
	"fmt"
	"io"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// ReadDir lists a directory in stored order: one read of its extent, at
// most Limits.DirBytes, at most Limits.Entries names.
func (f *FS) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	o, err := f.get(ctx, ino)
	if err != nil {
		return nil, err
	}
	if !o.dir() {
		return nil, fmt.Errorf("iso9660: ino %d: %w", ino, node.ErrNotDir)
	}
	base, n := int64(o.rec.extent)*f.bs, int64(o.rec.length)
	if n > f.lim.DirBytes {
		return nil, fmt.Errorf("iso9660: directory ino %d: %w: %d bytes, over the %d-byte limit", ino, node.ErrCorrupt, n, f.lim.DirBytes)
	}
	d := make([]byte, n)
	if err := f.read(ctx, d, base, "directory"); err != nil {
		return nil, err
	}
	at := func(_ context.Context, pos int64) ([]byte, error) {
		if pos < base || pos >= base+n {
			return nil, fmt.Errorf("iso9660: directory ino %d: %w: a record runs past its end", ino, node.ErrCorrupt)
		}
		return d[pos-base : min((pos/f.bs+1)*f.bs, base+n)-base], nil
	}
	var out []node.DirEntry
	for pos := base; pos < base+n; {
		if d[pos-base] == 0 {
			pos = (pos/f.bs + 1) * f.bs
			continue
		}
		rec, exts, next, err := f.collect(ctx, at, pos)
		if err != nil {
			return nil, err
		}
		recPos := pos
		pos = next
		if rec.dot() || rec.flags&flagAssociated != 0 {
			continue
		}
		o, err := f.object(ctx, rec, exts)
		if err != nil {
			return nil, err
		}
		if o.rock.relocated {
			continue
		}
		if len(out) >= f.lim.Entries {
			return nil, fmt.Errorf("iso9660: directory ino %d: %w: over %d entries", ino, node.ErrCorrupt, f.lim.Entries)
		}
		out = append(out, node.DirEntry{Name: o.name, Ino: f.number(recPos, o)})
	}
	return out, nil
}

// number gives the object recorded at pos its Ino, and caches it.
func (f *FS) number(pos int64, o *object) node.Ino {
	switch {
	case o.rock.hasChild:
		return node.Ino(int64(o.rock.child)*f.bs) + 1 // read from its "." record
	case o.dir():
		ino := node.Ino(int64(o.rec.extent)*f.bs) + 1
		f.objs.Add(ino, o)
		return ino
	}
	ino := node.Ino(pos) + 1
	if o.rock.nlink > 1 {
		link := extentIno | node.Ino(o.rec.extent)
		if o.rock.hasSerial {
			link = serialIno | node.Ino(o.rock.serial)
		}
		if o.rock.hasSerial || o.size() > 0 {
			f.mu.Lock()
			if _, ok := f.links[link]; ok || len(f.links) < f.lim.Objects {
				f.links[link] = pos
				ino = link
			}
			f.mu.Unlock()
		}
	}
	f.objs.Add(ino, o)
	return ino
}

// ReadAt reads a regular file's content from its extents.
func (f *FS) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	o, err := f.get(ctx, ino)
	if err != nil {
		return 0, err
	}
	if o.mode()&syscall.S_IFMT != syscall.S_IFREG {
		return 0, fmt.Errorf("iso9660: ino %d: %w", ino, node.ErrNotFile)
	}
	if o.rec.unit != 0 {
		return 0, fmt.Errorf("iso9660: ino %d: %w: interleaved files are not supported", ino, node.ErrCorrupt)
	}
	if off < 0 {
		return 0, fmt.Errorf("iso9660: ino %d: negative offset %d", ino, off)
	}
	n := 0
	start := int64(0) // of the current extent in the file
	for _, e := range o.extents {
		end := start + int64(e.length)
		if n < len(p) && off+int64(n) < end {
			at := off + int64(n) - start
			k := min(int64(len(p)-n), end-start-at)
			if err := f.read(ctx, p[n:n+int(k)], int64(e.block)*f.bs+at, "file data"); err != nil {
				return n, fmt.Errorf("iso9660: ino %d: %w", ino, err)
			}
			n += int(k)
		}
		start = end
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
