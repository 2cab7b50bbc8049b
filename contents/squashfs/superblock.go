package squashfs

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/osimagefs/osimagefs/contents/node"
)

// superblockSize is the length of the squashfs 4.0 superblock at offset 0.
const superblockSize = 96

// magic is "hsqs" read as a little-endian uint32.
const magic = 0x73717368

// noTable is the start of a table the image does not have.
const noTable = ^uint64(0)

// Superblock flags this reader looks at.
const (
	flagCompressorOptions = 0x0400
)

// Compression ids of the superblock.
const (
	compGzip = 1
	compLZMA = 2
	compLZO  = 3
	compXZ   = 4
	compLZ4  = 5
	compZstd = 6
)

// superblock is the part of the squashfs superblock this reader uses.
type superblock struct {
	inodeCount  uint32
	blockSize   uint32
	blockLog    uint16
	fragCount   uint32
	compression uint16
	flags       uint16
	idCount     uint16
	rootRef     uint64
	bytesUsed   uint64
	idTable     uint64
	xattrTable  uint64
	inodeTable  uint64
	dirTable    uint64
	fragTable   uint64
	exportTable uint64
}

// parseSuperblock decodes and checks b, the first superblockSize bytes of
// an image of size bytes, against the format and lim.
func parseSuperblock(b []byte, size int64, lim node.Limits) (superblock, error) {
	le := binary.LittleEndian
	if len(b) < superblockSize {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: %d bytes", node.ErrCorrupt, len(b))
	}
	if m := le.Uint32(b[0:]); m != magic {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: magic %#x", node.ErrCorrupt, m)
	}
	if major, minor := le.Uint16(b[28:]), le.Uint16(b[30:]); major != 4 || minor != 0 {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: version %d.%d, only 4.0 is read", node.ErrCorrupt, major, minor)
	}
	sb := superblock{
		inodeCount:  le.Uint32(b[4:]),
		blockSize:   le.Uint32(b[12:]),
		fragCount:   le.Uint32(b[16:]),
		compression: le.Uint16(b[20:]),
		blockLog:    le.Uint16(b[22:]),
		flags:       le.Uint16(b[24:]),
		idCount:     le.Uint16(b[26:]),
		rootRef:     le.Uint64(b[32:]),
		bytesUsed:   le.Uint64(b[40:]),
		idTable:     le.Uint64(b[48:]),
		xattrTable:  le.Uint64(b[56:]),
		inodeTable:  le.Uint64(b[64:]),
		dirTable:    le.Uint64(b[72:]),
		fragTable:   le.Uint64(b[80:]),
		exportTable: le.Uint64(b[88:]),
	}
	bs := sb.blockSize
	if bs < 4<<10 || bs > 1<<20 || bs&(bs-1) != 0 || uint16(bits.TrailingZeros32(bs)) != sb.blockLog {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: block size %d with log %d", node.ErrCorrupt, bs, sb.blockLog)
	}
	if int64(bs) > int64(lim.Block) {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: block size %d over the limit %d", node.ErrCorrupt, bs, lim.Block)
	}
	switch sb.compression {
	case compGzip, compLZO, compXZ, compLZ4, compZstd:
	case compLZMA:
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: unsupported compression lzma (squashfs 4.0 legacy)", node.ErrCorrupt)
	default:
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: unknown compression %d", node.ErrCorrupt, sb.compression)
	}
	if sb.bytesUsed > uint64(size) || sb.bytesUsed < superblockSize {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: bytes used %d, image is %d", node.ErrCorrupt, sb.bytesUsed, size)
	}
	// The compressor options, when present, are a metadata block right
	// after the superblock; every table is found by its absolute start,
	// so they only need to fit before the inode table.
	first := uint64(superblockSize)
	if sb.flags&flagCompressorOptions != 0 {
		first += 2
	}
	if sb.inodeTable < first || sb.inodeTable >= sb.dirTable || sb.dirTable > sb.bytesUsed {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: inode table at %d, directory table at %d, %d bytes used",
			node.ErrCorrupt, sb.inodeTable, sb.dirTable, sb.bytesUsed)
	}
	for _, t := range []struct {
		name  string
		start uint64
	}{{"id", sb.idTable}, {"fragment", sb.fragTable}, {"export", sb.exportTable}, {"xattr", sb.xattrTable}} {
		if t.start == noTable {
			continue
		}
		if t.start < sb.dirTable || t.start > sb.bytesUsed {
			return superblock{}, fmt.Errorf("squashfs: superblock: %w: %s table at %d outside [%d, %d]",
				node.ErrCorrupt, t.name, t.start, sb.dirTable, sb.bytesUsed)
		}
	}
	if sb.idTable == noTable || sb.idCount == 0 {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: no id table", node.ErrCorrupt)
	}
	if sb.fragCount > 0 && sb.fragTable == noTable {
		return superblock{}, fmt.Errorf("squashfs: superblock: %w: %d fragments without a fragment table", node.ErrCorrupt, sb.fragCount)
	}
	return sb, nil
}

// dirTableEnd is where the directory table ends: at the next table that
// follows it, or at the end of the used bytes.
func (sb superblock) dirTableEnd() uint64 {
	end := sb.bytesUsed
	for _, t := range []uint64{sb.idTable, sb.fragTable, sb.exportTable, sb.xattrTable} {
		if t != noTable && t > sb.dirTable && t < end {
			end = t
		}
	}
	return end
}
