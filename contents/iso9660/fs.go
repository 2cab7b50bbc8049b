package iso9660

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Where the volume descriptors are: from sector 16, 2048 bytes each;
// vdRead is how many Open reads at once.
const (
	vdStart = 16 * 2048
	vdSize  = 2048
	vdRead  = 16 << 10
	maxVDs  = 64
)

// Ino numbers: a directory's is the byte offset of its extent + 1 (where
// its "." record is), another object's the byte offset of its record + 1.
// Hard links share one from the high ranges: the Rock Ridge serial number
// (PX of RRIP 1.12) or, without one, the shared extent's block.
const (
	serialIno node.Ino = 1 << 47
	extentIno node.Ino = 1 << 46
)

// cacheLen bounds the parsed objects kept.
const cacheLen = 1 << 16

// maxExtents bounds the extents of one multi-extent file (4 GiB each at
// most), so that the cached objects stay small.
const maxExtents = 256

// FS is an open ISO 9660 image.
type FS struct {
	r      node.ReaderAt
	size   int64
	bs     int64 // logical block size
	root   node.Ino
	rr     bool // Rock Ridge: from the SP entry of the root's "." record
	skip   int  // SP's bytes to skip in every system use area
	joliet bool
	lim    node.Limits
	log    *slog.Logger

	objs *lru.Cache[node.Ino, *object]

	mu    sync.Mutex
	links map[node.Ino]int64 // hard-link Ino → record offset
}

// Open reads the volume descriptors and the root directory's "." record,
// prefetching the root directory.
func Open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error) {
	f := &FS{r: r, size: size, lim: opt.Limits.Or(), log: opt.Logger(), links: map[node.Ino]int64{}}
	f.objs, _ = lru.New[node.Ino, *object](cacheLen)
	if size >= 1<<46 {
		return nil, fmt.Errorf("iso9660: image of %d bytes: %w: too large to number", size, node.ErrCorrupt)
	}
	head := make([]byte, min(vdRead, max(size-vdStart, 0)))
	if err := f.read(ctx, head, vdStart, "volume descriptors"); err != nil {
		return nil, err
	}
	var pvd, svd []byte
	for i := range maxVDs {
		var vd []byte
		if (i+1)*vdSize <= len(head) {
			vd = head[i*vdSize : (i+1)*vdSize]
		} else {
			vd = make([]byte, vdSize)
			if err := f.read(ctx, vd, vdStart+int64(i)*vdSize, "volume descriptor"); err != nil {
				return nil, err
			}
		}
		if string(vd[1:6]) != "CD001" {
			return nil, fmt.Errorf("iso9660: volume descriptor %d at %d: %w: no CD001", i, vdStart+i*vdSize, node.ErrCorrupt)
		}
		switch vd[0] {
		case 1:
			if pvd == nil {
				pvd = vd
			}
		case 2:
			if esc := string(vd[88:91]); svd == nil && (esc == "%/@" || esc == "%/C" || esc == "%/E") {
				svd = vd
			}
		}
		if vd[0] == 255 {
			break
		}
	}
	if pvd == nil {
		return nil, fmt.Errorf("iso9660: %w: no primary volume descriptor", node.ErrCorrupt)
	}
	f.bs = int64(le16(pvd[128:]))
	if f.bs != 512 && f.bs != 1024 && f.bs != 2048 {
		return nil, fmt.Errorf("iso9660: primary volume descriptor: %w: block size %d", node.ErrCorrupt, f.bs)
	}
	root, n := parseRecord(pvd[156:190])
	if n == 0 || root.flags&flagDir == 0 {
		return nil, fmt.Errorf("iso9660: primary volume descriptor: %w: bad root record", node.ErrCorrupt)
	}
	node.Prefetch(ctx, r, []node.Range{{Off: int64(root.extent) * f.bs, Len: min(int64(root.length), f.lim.DirBytes)}})
	f.root = node.Ino(int64(root.extent)*f.bs) + 1
	dot, _, _, err := f.collect(ctx, f.readSpan, int64(f.root-1))
	if err != nil {
		return nil, fmt.Errorf("iso9660: root directory: %w", err)
	}
	if su := dot.su; len(su) >= 7 && string(su[:2]) == "SP" && su[4] == 0xbe && su[5] == 0xef {
		f.rr, f.skip = true, int(su[6])
	}
	if !f.rr && svd != nil {
		jroot, n := parseRecord(svd[156:190])
		if n != 0 && jroot.flags&flagDir != 0 {
			f.joliet = true
			f.root = node.Ino(int64(jroot.extent)*f.bs) + 1
		}
	}
	return f, nil
}

// read fills p from off; a short image is corruption, other errors pass.
func (f *FS) read(ctx context.Context, p []byte, off int64, what string) error {
	if off < 0 || off > f.size || int64(len(p)) > f.size-off {
		return fmt.Errorf("iso9660: %s at %d (%d bytes): %w: beyond the image's %d bytes", what, off, len(p), node.ErrCorrupt, f.size)
	}
	n, err := f.r.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("iso9660: %s at %d: %w: image ends early", what, off, node.ErrCorrupt)
	}
	return fmt.Errorf("iso9660: reading %s at %d: %w", what, off, err)
}

// Root returns the root directory's Ino.
func (f *FS) Root() node.Ino { return f.root }

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
