package squashfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
)

// inodeCacheLen is how many parsed inodes one FS keeps.
const inodeCacheLen = 1024

// fs is one open squashfs image.
type fs struct {
	r      node.ReaderAt
	sb     superblock
	lim    node.Limits
	log    *slog.Logger
	blocks blockcache.Space
	dec    *decompressor
	inodes *lru.Cache[node.Ino, *inode]
	ids    *tableIndex
	frags  *tableIndex
	root   node.Ino
}

// Open reads the superblock of the squashfs image in r, of size bytes,
// prefetches its metadata tables in parallel and checks its root inode.
func Open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error) {
	lim := opt.Limits.Or()
	f := &fs{r: r, lim: lim, log: opt.Logger()}
	var b [superblockSize]byte
	if size < superblockSize {
		return nil, fmt.Errorf("squashfs: superblock: %w: image of %d bytes", node.ErrCorrupt, size)
	}
	f.sb.bytesUsed = superblockSize // bounds the first read
	if err := f.readFull(ctx, b[:], 0); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", err)
	}
	sb, err := parseSuperblock(b[:], size, lim)
	if err != nil {
		return nil, err
	}
	f.sb = sb
	if err := f.newTables(lim); err != nil {
		return nil, err
	}
	if f.dec, err = newDecompressor(sb.compression, int(sb.blockSize)); err != nil {
		return nil, err
	}
	f.inodes, _ = lru.New[node.Ino, *inode](inodeCacheLen)
	f.blocks = opt.Blocks.Space()
	root, ok := inoOf(sb.rootRef>>16, uint16(sb.rootRef))
	if !ok || sb.rootRef>>16 >= 1<<32 {
		return nil, fmt.Errorf("squashfs: superblock: %w: root inode reference %#x", node.ErrCorrupt, sb.rootRef)
	}
	f.root = root
	f.log.Debug("squashfs: opened", "compression", f.dec.name, "block", sb.blockSize,
		"inodes", sb.inodeCount, "fragments", sb.fragCount, "ids", sb.idCount, "bytes", sb.bytesUsed)

	node.Prefetch(ctx, r, f.prefetchRanges())
	in, err := f.inode(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("squashfs: root: %w", err)
	}
	if in.attr.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("squashfs: root inode %d: %w: mode %#o is not a directory", root, node.ErrCorrupt, in.attr.Mode)
	}
	return f, nil
}

// prefetchMax bounds the metadata Open prefetches: real images have a few
// MiB of it even for a full OS; a hostile one may claim more.
const prefetchMax = 32 << 20

// prefetchRanges are the metadata regions: the tables after the directory
// table (fragment entries and index, export, id and xattr tables; small),
// then the directory table and the inode table, each cut to what is left
// of prefetchMax, the directory table getting at most half of it.
func (f *fs) prefetchRanges() []node.Range {
	sb := f.sb
	inodes := int64(sb.dirTable - sb.inodeTable)
	dirEnd := int64(sb.dirTableEnd())
	dirs := dirEnd - int64(sb.dirTable)
	tail := int64(sb.bytesUsed) - dirEnd
	left := int64(prefetchMax)
	tail = min(tail, left/4)
	left -= tail
	dirs = min(dirs, left/2)
	left -= dirs
	inodes = min(inodes, left)
	var rs []node.Range
	for _, r := range []node.Range{
		{Off: dirEnd, Len: tail},
		{Off: int64(sb.dirTable), Len: dirs},
		{Off: int64(sb.inodeTable), Len: inodes},
	} {
		if r.Len > 0 {
			rs = append(rs, r)
		}
	}
	return rs
}

// readFull reads len(p) bytes at off, which must lie in the used bytes.
// Errors of the reader are passed on; a short image is corrupt.
func (f *fs) readFull(ctx context.Context, p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > int64(f.sb.bytesUsed) {
		return fmt.Errorf("%w: %d bytes at %d, past the end %d", node.ErrCorrupt, len(p), off, f.sb.bytesUsed)
	}
	n, err := f.r.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %d of %d bytes at %d: %w", node.ErrCorrupt, n, len(p), off, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}

// Root is the Ino of the root directory.
func (f *fs) Root() node.Ino { return f.root }

// Attr returns what stat shows of ino.
func (f *fs) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return node.Attr{}, err
	}
	return in.attr, nil
}

// Readlink returns a symlink's target.
func (f *fs) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return "", err
	}
	if in.attr.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", node.ErrNotLink
	}
	return in.target, nil
}

// ReadAt reads a regular file's content.
func (f *fs) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return 0, err
	}
	if in.file == nil {
		return 0, node.ErrNotFile
	}
	n, err := f.readFile(ctx, in.file, p, off)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("squashfs: inode %d: %w", ino, err)
	}
	return n, err
}

// rdev converts a device number in the old Linux encoding squashfs
// stores, (major<<8)|(minor&0xff)|((minor&^0xff)<<12), to unix.Mkdev's.
func rdev(v uint32) uint64 {
	major := (v >> 8) & 0xfff
	minor := (v & 0xff) | ((v >> 12) & 0xfff00)
	return unix.Mkdev(major, minor)
}

func unixTime(s uint32) time.Time { return time.Unix(int64(s), 0) }

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
