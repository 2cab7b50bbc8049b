package ext4

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// The superblock is sbSize bytes at sbOffset, whatever the block size.
const (
	sbOffset = 1024
	sbSize   = 1024
	sbMagic  = 0xEF53
)

// Feature bits this reader looks at.
const (
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompat64Bit       = 0x80
	incompatDirData     = 0x1000

	roCompatSparseSuper = 0x1
)

// incompatUnsupported are the features whose images this reader would
// misread: compressed blocks, an external journal device instead of a file
// system, and Lustre's extra dirent data.
const incompatUnsupported = incompatCompression | incompatJournalDev | incompatDirData

// superblock is what the reader needs of the ext4 superblock, checked.
type superblock struct {
	inodesCount    uint32
	blocksCount    uint64
	firstDataBlock uint64
	blockSize      int64
	blocksPerGroup uint32
	inodesPerGroup uint32
	inodeSize      int64
	descSize       int64
	groups         uint64
	compat         uint32
	incompat       uint32
	roCompat       uint32
	firstMetaBG    uint64
	backupBGs      [2]uint32
}

// parseSuperblock checks and decodes the sbSize bytes at sbOffset of an
// image of size bytes.
func parseSuperblock(b []byte, size int64) (*superblock, error) {
	le := binary.LittleEndian
	if len(b) < sbSize {
		return nil, corruptf("superblock at %d: %d bytes, want %d", sbOffset, len(b), sbSize)
	}
	if m := le.Uint16(b[0x38:]); m != sbMagic {
		return nil, corruptf("superblock at %d: magic %#x, want %#x", sbOffset, m, sbMagic)
	}
	sb := &superblock{
		inodesCount:    le.Uint32(b[0x0:]),
		blocksCount:    uint64(le.Uint32(b[0x4:])),
		firstDataBlock: uint64(le.Uint32(b[0x14:])),
		blocksPerGroup: le.Uint32(b[0x20:]),
		inodesPerGroup: le.Uint32(b[0x28:]),
		inodeSize:      128,
		descSize:       32,
		compat:         le.Uint32(b[0x5C:]),
		incompat:       le.Uint32(b[0x60:]),
		roCompat:       le.Uint32(b[0x64:]),
		firstMetaBG:    uint64(le.Uint32(b[0x104:])),
		backupBGs:      [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
	}
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return nil, corruptf("superblock: log block size %d, want at most 6 (64 KiB)", logBS)
	}
	sb.blockSize = 1024 << logBS
	if rev := le.Uint32(b[0x4C:]); rev >= 1 {
		sb.inodeSize = int64(le.Uint16(b[0x58:]))
	} else {
		sb.incompat, sb.roCompat, sb.compat = 0, 0, 0
	}
	if f := sb.incompat & incompatUnsupported; f != 0 {
		return nil, fmt.Errorf("ext4: superblock: %w: incompatible features %#x (%w)", node.ErrCorrupt, f, errors.ErrUnsupported)
	}
	if sb.incompat&incompat64Bit != 0 {
		sb.blocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		sb.descSize = int64(le.Uint16(b[0xFE:]))
		if sb.descSize < 64 || sb.descSize > 1024 || sb.descSize&(sb.descSize-1) != 0 {
			return nil, corruptf("superblock: group descriptor size %d, want a power of 2 in [64, 1024]", sb.descSize)
		}
	}
	if sb.inodeSize < 128 || sb.inodeSize > sb.blockSize || sb.inodeSize&(sb.inodeSize-1) != 0 {
		return nil, corruptf("superblock: inode size %d, want a power of 2 in [128, %d]", sb.inodeSize, sb.blockSize)
	}
	bitsPerBlock := uint32(sb.blockSize * 8)
	if sb.blocksPerGroup == 0 || sb.blocksPerGroup > bitsPerBlock {
		return nil, corruptf("superblock: %d blocks per group, want 1..%d", sb.blocksPerGroup, bitsPerBlock)
	}
	if sb.inodesPerGroup == 0 || sb.inodesPerGroup > bitsPerBlock {
		return nil, corruptf("superblock: %d inodes per group, want 1..%d", sb.inodesPerGroup, bitsPerBlock)
	}
	if sb.firstDataBlock >= sb.blocksCount {
		return nil, corruptf("superblock: first data block %d of %d blocks", sb.firstDataBlock, sb.blocksCount)
	}
	if sb.blocksCount > uint64(1)<<48 {
		return nil, corruptf("superblock: %d blocks", sb.blocksCount)
	}
	if maxBlocks := uint64(size / sb.blockSize); sb.firstDataBlock+1 >= maxBlocks {
		return nil, corruptf("superblock: image of %d bytes holds no group descriptor after block %d", size, sb.firstDataBlock)
	}
	bpg := uint64(sb.blocksPerGroup)
	sb.groups = (sb.blocksCount - sb.firstDataBlock + bpg - 1) / bpg
	if uint64(sb.inodesCount) > sb.groups*uint64(sb.inodesPerGroup) {
		return nil, corruptf("superblock: %d inodes in %d groups of %d", sb.inodesCount, sb.groups, sb.inodesPerGroup)
	}
	if sb.inodesCount < rootIno {
		return nil, corruptf("superblock: %d inodes, no root", sb.inodesCount)
	}
	return sb, nil
}

// descsPerBlock is how many group descriptors one block holds.
func (sb *superblock) descsPerBlock() uint64 { return uint64(sb.blockSize / sb.descSize) }

// gdtBlocks is how many blocks of the classic, contiguous group descriptor
// table follow the superblock: all of them, or up to the first meta group.
func (sb *superblock) gdtBlocks() uint64 {
	n := (sb.groups + sb.descsPerBlock() - 1) / sb.descsPerBlock()
	if sb.incompat&incompatMetaBG != 0 {
		n = min(n, sb.firstMetaBG)
	}
	return n
}

// descOffset is where group g's descriptor is: in the table after the
// superblock, or, with meta_bg, in the first block group of its meta group
// after that group's superblock backup.
func (sb *superblock) descOffset(g uint64) int64 {
	dpb := sb.descsPerBlock()
	mg := g / dpb
	block := sb.firstDataBlock + 1 + mg
	if sb.incompat&incompatMetaBG != 0 && mg >= sb.firstMetaBG {
		first := mg * dpb
		block = sb.firstDataBlock + first*uint64(sb.blocksPerGroup)
		if sb.hasSuper(first) {
			block++
		}
	}
	return int64(block)*sb.blockSize + int64(g%dpb)*sb.descSize
}

// hasSuper says whether group g holds a superblock backup (and so a copy of
// the group descriptors after it).
func (sb *superblock) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case sb.compat&compatSparseSuper2 != 0:
		return g == uint64(sb.backupBGs[0]) || g == uint64(sb.backupBGs[1])
	case sb.roCompat&roCompatSparseSuper == 0 || g == 1:
		return true
	}
	for _, p := range []uint64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}
