package fat

import (
	"encoding/binary"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// kind is the FAT width: 12, 16 or 32 bits per entry.
type kind int

// geometry is what the boot sector says of where things are, in bytes.
type geometry struct {
	kind        kind
	sectorSize  int64
	clusterSize int64
	fatOff      int64 // the first FAT
	fatLen      int64 // one FAT
	rootOff     int64 // FAT12/16: the fixed root directory
	rootLen     int64
	rootCluster uint32 // FAT32: the root directory's first cluster
	dataOff     int64  // cluster 2
	clusters    uint32 // data clusters: valid numbers are 2..clusters+1
}

// parseBoot checks the boot sector b (at least 512 bytes) of a file system
// of size bytes and derives its geometry. The FAT type follows from the
// cluster count, as Microsoft's specification says.
func parseBoot(b []byte, size int64) (geometry, error) {
	var g geometry
	bad := func(format string, args ...any) (geometry, error) {
		return g, fmt.Errorf("fat: boot sector: %w: "+format, append([]any{node.ErrCorrupt}, args...)...)
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		return bad("no 55 AA signature")
	}
	if b[0] != 0xeb && b[0] != 0xe9 {
		return bad("no jump instruction (%#x)", b[0])
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(b[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(b[o:])) }
	ss, spc := le16(0x0b), int64(b[0x0d])
	if ss < 512 || ss > 4096 || ss&(ss-1) != 0 {
		return bad("sector size %d", ss)
	}
	if spc == 0 || spc&(spc-1) != 0 {
		return bad("%d sectors per cluster", spc)
	}
	reserved, nfats, rootEntries := le16(0x0e), int64(b[0x10]), le16(0x11)
	total := le16(0x13)
	if total == 0 {
		total = le32(0x20)
	}
	fatSectors := le16(0x16)
	if fatSectors == 0 {
		fatSectors = le32(0x24)
	}
	if reserved == 0 || nfats == 0 || fatSectors == 0 || total == 0 {
		return bad("%d reserved sectors, %d FATs of %d sectors, %d sectors", reserved, nfats, fatSectors, total)
	}
	rootSectors := (rootEntries*32 + ss - 1) / ss
	dataSector := reserved + nfats*fatSectors + rootSectors
	if dataSector >= total {
		return bad("data at sector %d of %d", dataSector, total)
	}
	clusters := (total - dataSector) / spc
	g = geometry{
		sectorSize:  ss,
		clusterSize: ss * spc,
		fatOff:      reserved * ss,
		fatLen:      fatSectors * ss,
		rootOff:     (reserved + nfats*fatSectors) * ss,
		rootLen:     rootEntries * 32,
		dataOff:     dataSector * ss,
		clusters:    uint32(min(clusters, 0x0ffffff0)),
	}
	switch {
	case clusters < 4085:
		g.kind = 12
	case clusters < 65525:
		g.kind = 16
	default:
		g.kind = 32
		g.rootCluster = uint32(le32(0x2c))
		g.rootLen = 0
		if !g.valid(g.rootCluster) {
			return bad("root cluster %d of %d", g.rootCluster, g.clusters)
		}
	}
	if g.kind != 32 && rootEntries == 0 {
		return bad("FAT%d without root directory entries", g.kind)
	}
	// The FAT must hold an entry for every cluster.
	if need := (int64(g.clusters) + 2) * int64(g.kind) / 8; need > g.fatLen {
		return bad("FAT of %d bytes for %d clusters", g.fatLen, g.clusters)
	}
	if g.dataOff > size {
		return bad("data at %d beyond the %d bytes", g.dataOff, size)
	}
	return g, nil
}

// valid reports whether c names a data cluster.
func (g geometry) valid(c uint32) bool { return c >= 2 && c-2 < g.clusters }

// clusterOff is the byte offset of cluster c.
func (g geometry) clusterOff(c uint32) int64 { return g.dataOff + int64(c-2)*g.clusterSize }
