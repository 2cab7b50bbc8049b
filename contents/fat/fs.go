package fat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/osimagefs/osimagefs/contents/node"
)

// rootIno is the root directory's Ino. Every other object's is the byte
// offset of its short directory entry + 1, which is never 1: offset 0 is
// the boot sector.
const rootIno node.Ino = 1

// cacheLen bounds the entries, chain lengths and read positions kept.
const cacheLen = 1 << 16

// FS is an open FAT file system.
type FS struct {
	r    node.ReaderAt
	size int64
	g    geometry
	t    *table
	lim  node.Limits
	log  *slog.Logger

	entries *lru.Cache[node.Ino, entry]    // what ReadDir found
	nlinks  *lru.Cache[node.Ino, uint32]   // directories' link counts
	chains  *lru.Cache[uint32, int64]      // checked chains' cluster counts
	cursors *lru.Cache[node.Ino, position] // where the last read of a file ended
}

// position is a cluster of a file's chain and its index in it.
type position struct {
	index   int64
	cluster uint32
}

// Open reads the boot sector of the FAT file system r of size bytes, and
// prefetches the start of the FAT and the root directory.
func Open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error) {
	f := &FS{r: r, size: size, lim: opt.Limits.Or(), log: opt.Logger()}
	boot := make([]byte, 512)
	if err := f.read(ctx, boot, 0, "boot sector"); err != nil {
		return nil, err
	}
	g, err := parseBoot(boot, size)
	if err != nil {
		return nil, err
	}
	f.g = g
	f.t = newTable(g, f.read)
	f.entries, _ = lru.New[node.Ino, entry](cacheLen)
	f.nlinks, _ = lru.New[node.Ino, uint32](cacheLen)
	f.chains, _ = lru.New[uint32, int64](cacheLen)
	f.cursors, _ = lru.New[node.Ino, position](cacheLen)
	rg := []node.Range{{Off: g.fatOff, Len: min(g.fatLen, chunkLen*4)}}
	if g.kind == 32 {
		rg = append(rg, node.Range{Off: g.clusterOff(g.rootCluster), Len: g.clusterSize})
	} else {
		rg = append(rg, node.Range{Off: g.rootOff, Len: min(g.rootLen, f.lim.DirBytes)})
	}
	node.Prefetch(ctx, r, rg)
	return f, nil
}

// read fills p from off; a short image is corruption, other errors pass.
func (f *FS) read(ctx context.Context, p []byte, off int64, what string) error {
	if off < 0 || off > f.size || int64(len(p)) > f.size-off {
		return fmt.Errorf("fat: %s at %d (%d bytes): %w: beyond the image's %d bytes", what, off, len(p), node.ErrCorrupt, f.size)
	}
	n, err := f.r.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("fat: %s at %d: %w: image ends early", what, off, node.ErrCorrupt)
	}
	return fmt.Errorf("fat: reading %s at %d: %w", what, off, err)
}

// Root returns the root directory's Ino.
func (f *FS) Root() node.Ino { return rootIno }

// entry returns the short entry of ino: from what ReadDir cached, or read
// again at the offset the Ino names.
func (f *FS) entry(ctx context.Context, ino node.Ino) (entry, error) {
	if ino == rootIno {
		return entry{attr: attrDir, cluster: f.g.rootCluster, mtime: time.Unix(0, 0).UTC()}, nil
	}
	if e, ok := f.entries.Get(ino); ok {
		return e, nil
	}
	if ino == 0 || int64(ino-1) >= f.size {
		return entry{}, fmt.Errorf("fat: ino %d: %w: beyond the image", ino, node.ErrCorrupt)
	}
	b := make([]byte, 32)
	if err := f.read(ctx, b, int64(ino-1), "directory entry"); err != nil {
		return entry{}, err
	}
	return parseShort(b, f.g.kind == 32), nil
}

// Attr returns what stat shows, as Linux's vfat does by default: 0755
// directories, 0644 files (0444 when read-only), owner 0:0.
func (f *FS) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	e, err := f.entry(ctx, ino)
	if err != nil {
		return node.Attr{}, err
	}
	a := node.Attr{Mtime: e.mtime, Nlink: 1}
	if !e.dir() {
		a.Mode = syscall.S_IFREG | 0o644
		if e.attr&attrReadOnly != 0 {
			a.Mode &^= 0o222
		}
		a.Size = int64(e.size)
		return a, nil
	}
	a.Mode = syscall.S_IFDIR | 0o755
	n, ok := f.nlinks.Get(ino)
	if !ok {
		list, err := f.list(ctx, ino, e)
		if err != nil {
			return node.Attr{}, err
		}
		n = 2
		for _, d := range list {
			if d.e.dir() {
				n++
			}
		}
		f.nlinks.Add(ino, n)
	}
	a.Nlink = n
	return a, nil
}

// ReadDir lists a directory in stored order, long names where present.
func (f *FS) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	e, err := f.entry(ctx, ino)
	if err != nil {
		return nil, err
	}
	if !e.dir() {
		return nil, fmt.Errorf("fat: ino %d: %w", ino, node.ErrNotDir)
	}
	list, err := f.list(ctx, ino, e)
	if err != nil {
		return nil, err
	}
	out := make([]node.DirEntry, len(list))
	for i, d := range list {
		f.entries.Add(d.ino, d.e)
		out[i] = node.DirEntry{Name: d.e.name, Ino: d.ino}
	}
	return out, nil
}

// Readlink fails: FAT has no symlinks.
func (f *FS) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	if _, err := f.entry(ctx, ino); err != nil {
		return "", err
	}
	return "", fmt.Errorf("fat: ino %d: %w", ino, node.ErrNotLink)
}
