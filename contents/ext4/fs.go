package ext4

import (
	"context"
	"fmt"
	"log/slog"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Bounds of the in-memory caches, whatever Limits.Objects allows.
const (
	maxCachedInodes = 1 << 16
	maxCachedGroups = 1 << 16
	// metaCacheBytes bounds the cached extent tree nodes and indirect blocks.
	metaCacheBytes = 8 << 20
	// headBytes is what Open reads first: the superblock and, for blocks of
	// up to 4 KiB, the first group descriptor after it.
	headBytes = 8 << 10
	// maxPrefetchGDT bounds the group descriptor table Open prefetches.
	maxPrefetchGDT = 8 << 20
)

// fsys is an open ext2/3/4 image. Its caches are safe for concurrent use
// and everything else is read-only after Open.
type fsys struct {
	r      node.ReaderAt
	size   int64
	sb     *superblock
	limits node.Limits
	log    *slog.Logger
	groups *lru.Cache[uint64, uint64] // group → its inode table block
	inodes *lru.Cache[uint32, *inode] // parsed inodes
	meta   *lru.Cache[uint64, []byte] // extent tree nodes and indirect blocks
}

// Open reads the superblock of the ext2/3/4 image in r (size bytes),
// prefetches in parallel its group descriptor table and the inode table
// block holding the root, and checks the root is a directory.
func Open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error) {
	if size < sbOffset+sbSize {
		return nil, corruptf("image of %d bytes is smaller than its superblock end %d", size, sbOffset+sbSize)
	}
	f := &fsys{r: r, size: size, limits: opt.Limits.Or(), log: opt.Logger()}
	head := make([]byte, min(size, headBytes))
	if err := f.readFull(ctx, head, 0, "superblock"); err != nil {
		return nil, err
	}
	sb, err := parseSuperblock(head[sbOffset:sbOffset+sbSize], size)
	if err != nil {
		return nil, err
	}
	f.sb = sb
	if sb.incompat&incompatRecover != 0 {
		f.log.Warn("ext4: journal needs recovery; reading the image as it is")
	}
	objects := max(1, f.limits.Objects)
	f.groups, _ = lru.New[uint64, uint64](min(objects, maxCachedGroups))
	f.inodes, _ = lru.New[uint32, *inode](min(objects, maxCachedInodes))
	f.meta, _ = lru.New[uint64, []byte](max(4, min(objects, int(metaCacheBytes/sb.blockSize))))

	gdt := node.Range{Off: (int64(sb.firstDataBlock) + 1) * sb.blockSize}
	gdt.Len = min(int64(sb.gdtBlocks())*sb.blockSize, maxPrefetchGDT, size-gdt.Off)
	ranges := []node.Range{gdt}
	if off := sb.descOffset(0); off+sb.descSize <= int64(len(head)) {
		// The root's inode table block is known already: fetch it with the
		// descriptors.
		if table := parseInodeTable(head[off : off+sb.descSize]); table < sb.blocksCount {
			at := int64(table)*sb.blockSize + (rootIno-1)*sb.inodeSize
			ranges = append(ranges, node.Range{Off: at &^ (sb.blockSize - 1), Len: sb.blockSize})
		}
	}
	node.Prefetch(ctx, r, ranges)

	root, err := f.inode(ctx, rootIno)
	if err != nil {
		return nil, fmt.Errorf("ext4: root: %w", err)
	}
	if root.typ() != sIFDIR {
		return nil, corruptf("root inode %d: mode %#o is not a directory", rootIno, root.mode)
	}
	return f, nil
}

// Root is the root directory's inode, 2.
func (f *fsys) Root() node.Ino { return rootIno }

// Attr returns the attributes of inode ino.
func (f *fsys) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return node.Attr{}, err
	}
	return in.attr(), nil
}

// Readlink returns the target of symlink ino: in i_block (a fast symlink),
// in inline data, or in its data blocks.
func (f *fsys) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return "", err
	}
	if in.typ() != sIFLNK {
		return "", fmt.Errorf("ext4: inode %d: %w", ino, node.ErrNotLink)
	}
	if in.size == 0 || in.size > int64(f.limits.LinkBytes) {
		return "", corruptf("symlink %d: target of %d bytes, want 1..%d", ino, in.size, f.limits.LinkBytes)
	}
	if in.fastSymlink() {
		return string(in.iblock[:in.size]), nil
	}
	b := make([]byte, in.size)
	if err := f.readData(ctx, in, b, 0); err != nil {
		return "", fmt.Errorf("symlink %d: %w", ino, err)
	}
	return string(b), nil
}

// fastSymlink says whether a symlink's target is in i_block itself: short,
// and neither inline data nor an extent tree there.
func (in *inode) fastSymlink() bool {
	if in.size >= iBlockSize || in.flags&flagInlineData != 0 {
		return false
	}
	if in.flags&flagExtents != 0 {
		_, err := parseExtentHeader(in.iblock[:])
		return err != nil
	}
	return true
}
