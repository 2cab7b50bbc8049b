package part

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// mbrSector is the sector size MBR offsets count in.
const mbrSector = 512

// maxLogical bounds the EBR chain, which a hostile disk can make a loop.
const maxLogical = 128

// mbrEntry is one 16-byte partition entry of an MBR or EBR.
type mbrEntry struct {
	status      byte
	typ         byte
	start, size uint32 // in sectors
}

// mbrTable is the four entries of a sector ending in 55 AA.
type mbrTable [4]mbrEntry

// parseMBR reads the entries of sector b, reporting false when it carries
// no table: no 55 AA signature, or a status byte other than 0x00 or 0x80
// (a FAT boot sector or boot code).
func parseMBR(b []byte) (mbrTable, bool) {
	var t mbrTable
	if len(b) < mbrSector || b[510] != 0x55 || b[511] != 0xaa {
		return t, false
	}
	for i := range t {
		e := b[446+16*i:]
		t[i] = mbrEntry{
			status: e[0],
			typ:    e[4],
			start:  binary.LittleEndian.Uint32(e[8:]),
			size:   binary.LittleEndian.Uint32(e[12:]),
		}
		if e[0] != 0 && e[0] != 0x80 {
			return t, false
		}
	}
	return t, true
}

// protective reports whether the table holds a GPT protective entry (alone,
// or in a hybrid MBR).
func (t mbrTable) protective() bool {
	for _, e := range t {
		if e.typ == 0xee {
			return true
		}
	}
	return false
}

func isExtended(typ string) bool {
	return typ == "0x05" || typ == "0x0f" || typ == "0x85"
}

func typeName(b byte) string { return fmt.Sprintf("0x%02x", b) }

// mbr lists the primary partitions of t and the logical ones of the first
// extended partition's EBR chain.
func (d *disk) mbr(ctx context.Context, t mbrTable) ([]Partition, error) {
	var parts, logical []Partition
	extended := false
	for i, e := range t {
		if e.typ == 0 || e.size == 0 {
			continue
		}
		p, ok := d.bounded(i+1, 0, e)
		if !ok {
			continue
		}
		parts = append(parts, p)
		if p.Extended() && !extended {
			extended = true
			l, err := d.logical(ctx, p)
			if err != nil {
				return nil, err
			}
			logical = l
		}
	}
	return append(parts, logical...), nil
}

// bounded makes the partition of entry e relative to base (bytes), or
// reports false, logging it, when it does not fit on the disk.
func (d *disk) bounded(n int, base int64, e mbrEntry) (Partition, bool) {
	p := Partition{
		Number: n,
		Start:  base + int64(e.start)*mbrSector,
		Size:   int64(e.size) * mbrSector,
		Type:   typeName(e.typ),
	}
	if p.Start > d.size || p.Size > d.size-p.Start {
		d.log.Info("part: MBR partition beyond the disk, skipped", "number", n, "start", p.Start, "size", p.Size, "disk", d.size)
		return p, false
	}
	return p, true
}

// logical follows the EBR chain of the extended partition ext: each EBR's
// first entry is a logical partition (relative to that EBR), its second
// the next EBR (relative to ext's start).
func (d *disk) logical(ctx context.Context, ext Partition) ([]Partition, error) {
	var parts []Partition
	n := 5
	seen := map[int64]bool{}
	sector := make([]byte, mbrSector)
	for ebr := ext.Start; ; {
		if seen[ebr] {
			return nil, fmt.Errorf("part: EBR at %d: %w: the chain loops", ebr, node.ErrCorrupt)
		}
		if len(seen) >= maxLogical {
			return nil, fmt.Errorf("part: EBR at %d: %w: more than %d logical partitions", ebr, node.ErrCorrupt, maxLogical)
		}
		seen[ebr] = true
		if err := d.read(ctx, sector, ebr, "EBR"); err != nil {
			return nil, err
		}
		t, ok := parseMBR(sector)
		if !ok {
			return nil, fmt.Errorf("part: EBR at %d: %w: no 55 AA signature or a bad status byte", ebr, node.ErrCorrupt)
		}
		if e := t[0]; e.typ != 0 && e.size != 0 {
			if p, ok := d.bounded(n, ebr, e); ok {
				parts = append(parts, p)
			}
			n++
		}
		next := t[1]
		if next.typ == 0 || next.size == 0 || !isExtended(typeName(next.typ)) {
			return parts, nil
		}
		ebr = ext.Start + int64(next.start)*mbrSector
		if ebr >= ext.Start+ext.Size {
			return nil, fmt.Errorf("part: EBR link to %d: %w: outside the extended partition %d+%d", ebr, node.ErrCorrupt, ext.Start, ext.Size)
		}
	}
}
