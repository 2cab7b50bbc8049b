package part

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf16"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Bounds on what a GPT header may claim (UEFI asks for 128 entries of 128
// bytes; real tables never have more than a few hundred).
const (
	maxEntries   = 1024
	minEntrySize = 128
	maxEntrySize = 4096
	headerMin    = 92
)

// gptHeader is the part of a GPT header Read uses.
type gptHeader struct {
	myLBA, altLBA         uint64
	firstUsable           uint64
	lastUsable            uint64
	entriesLBA            uint64
	count, entrySize, crc uint32
}

// gpt reads the GPT of a disk whose MBR is protective: the primary header
// at LBA 1 for 512- or 4096-byte sectors, or the backup at the last LBA
// when the primary is bad.
func (d *disk) gpt(ctx context.Context) ([]Partition, error) {
	var first error
	for _, ss := range []int64{512, 4096} {
		if d.size < 2*ss {
			continue
		}
		parts, err := d.gptAt(ctx, ss, 1)
		if err == nil {
			return parts, nil
		}
		if !errors.Is(err, node.ErrCorrupt) {
			return nil, err
		}
		if !errors.Is(err, errNoSignature) || first == nil {
			first = err
		}
		backup, berr := d.gptAt(ctx, ss, uint64(d.size/ss-1))
		if berr == nil {
			d.log.Info("part: primary GPT header bad, backup used", "err", err, "sector", ss)
			return backup, nil
		}
		if !errors.Is(berr, node.ErrCorrupt) {
			return nil, berr
		}
	}
	if first == nil {
		first = fmt.Errorf("part: GPT: %w: disk of %d bytes too small", node.ErrCorrupt, d.size)
	}
	return nil, fmt.Errorf("part: protective MBR without a usable GPT: %w", first)
}

var errNoSignature = errors.New(`no "EFI PART" signature`)

// gptAt reads the header at lba (in ss-byte sectors) and its entries,
// checking both CRCs.
func (d *disk) gptAt(ctx context.Context, ss int64, lba uint64) ([]Partition, error) {
	buf := make([]byte, ss)
	off := int64(lba) * ss
	if err := d.read(ctx, buf, off, "GPT header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(buf, lba)
	if err != nil {
		return nil, fmt.Errorf("part: GPT header at %d: %w", off, err)
	}
	lbas := uint64(d.size / ss)
	if h.entriesLBA >= lbas || h.lastUsable >= lbas || h.firstUsable > h.lastUsable {
		return nil, fmt.Errorf("part: GPT header at %d: %w: entries at LBA %d, usable %d..%d, disk of %d sectors", off, node.ErrCorrupt, h.entriesLBA, h.firstUsable, h.lastUsable, lbas)
	}
	entries := make([]byte, int64(h.count)*int64(h.entrySize))
	eoff := int64(h.entriesLBA) * ss
	if err := d.read(ctx, entries, eoff, "GPT entries"); err != nil {
		return nil, err
	}
	if crc32.ChecksumIEEE(entries) != h.crc {
		return nil, fmt.Errorf("part: GPT entries at %d: %w: CRC32 mismatch", eoff, node.ErrCorrupt)
	}
	var parts []Partition
	for i := range int(h.count) {
		e := entries[i*int(h.entrySize):]
		typ := e[:16]
		if bytes.Equal(typ, make([]byte, 16)) {
			continue
		}
		start, end := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if start > end || end >= lbas {
			d.log.Info("part: GPT partition beyond the disk, skipped", "number", i+1, "first", start, "last", end, "sectors", lbas)
			continue
		}
		parts = append(parts, Partition{
			Number: i + 1,
			Start:  int64(start) * ss,
			Size:   int64(end-start+1) * ss,
			Type:   guid(typ),
			Name:   utf16Name(e[56:128]),
		})
	}
	return parts, nil
}

// parseHeader checks the signature, size, CRC and self-pointer of the
// header sector b read at lba.
func parseHeader(b []byte, lba uint64) (gptHeader, error) {
	var h gptHeader
	if string(b[:8]) != "EFI PART" {
		return h, fmt.Errorf("%w: %w", node.ErrCorrupt, errNoSignature)
	}
	size := binary.LittleEndian.Uint32(b[12:])
	if size < headerMin || int(size) > len(b) {
		return h, fmt.Errorf("%w: header size %d", node.ErrCorrupt, size)
	}
	hdr := bytes.Clone(b[:size])
	want := binary.LittleEndian.Uint32(hdr[16:])
	clear(hdr[16:20])
	if crc32.ChecksumIEEE(hdr) != want {
		return h, fmt.Errorf("%w: header CRC32 mismatch", node.ErrCorrupt)
	}
	h = gptHeader{
		myLBA:       binary.LittleEndian.Uint64(b[24:]),
		altLBA:      binary.LittleEndian.Uint64(b[32:]),
		firstUsable: binary.LittleEndian.Uint64(b[40:]),
		lastUsable:  binary.LittleEndian.Uint64(b[48:]),
		entriesLBA:  binary.LittleEndian.Uint64(b[72:]),
		count:       binary.LittleEndian.Uint32(b[80:]),
		entrySize:   binary.LittleEndian.Uint32(b[84:]),
		crc:         binary.LittleEndian.Uint32(b[88:]),
	}
	if h.myLBA != lba {
		return h, fmt.Errorf("%w: header says it is at LBA %d, read at %d", node.ErrCorrupt, h.myLBA, lba)
	}
	if h.count > maxEntries || h.entrySize < minEntrySize || h.entrySize > maxEntrySize || h.entrySize&(h.entrySize-1) != 0 {
		return h, fmt.Errorf("%w: %d entries of %d bytes", node.ErrCorrupt, h.count, h.entrySize)
	}
	return h, nil
}

// guid formats a GUID stored mixed-endian, as GPT does, in upper case.
func guid(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// utf16Name decodes a NUL-padded UTF-16LE name.
func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
