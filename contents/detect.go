package contents

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Format is what a layer or partition holds.
type Format string

const (
	Unknown  Format = ""
	Squashfs Format = "squashfs"
	ISO9660  Format = "iso9660"
	Ext4     Format = "ext4"
	FAT      Format = "fat"
	GPT      Format = "gpt"
	MBR      Format = "mbr"
	Cpio     Format = "cpio" // a Linux initramfs, compressed or not
)

// The regions detection looks at: the first 4 KiB (squashfs, cpio and
// compression magics, MBR, GPT at LBA 1 for 512- and 4096-byte sectors,
// FAT's boot sector, ext4's superblock at 1024) and ISO 9660's first
// volume descriptor at 32 KiB.
const (
	headLen   = 8192
	isoOffset = 32768
	isoLen    = 8
)

// heads holds the bytes detect looks at.
type heads struct {
	head, iso []byte
}

// readHeads reads both regions at once: on a lazy reader they are two
// chunks, fetched in parallel.
func readHeads(ctx context.Context, r node.ReaderAt, size int64) (heads, error) {
	var h heads
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { h.head, err = readUpTo(ctx, r, 0, headLen, size); return err })
	g.Go(func() (err error) { h.iso, err = readUpTo(ctx, r, isoOffset, isoLen, size); return err })
	return h, g.Wait()
}

// readUpTo reads n bytes at off, fewer where the image ends first.
func readUpTo(ctx context.Context, r node.ReaderAt, off, n, size int64) ([]byte, error) {
	if off >= size {
		return nil, nil
	}
	buf := make([]byte, min(n, size-off))
	k, err := r.ReadAt(ctx, buf, off)
	if err == io.EOF {
		err = nil
	}
	return buf[:k], err
}

// detect names the format of an image from its heads.
func detect(h heads) Format {
	b := h.head
	at := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "hsqs"):
		return Squashfs
	case len(h.iso) >= 6 && string(h.iso[1:6]) == "CD001":
		return ISO9660
	case at(512, "EFI PART"), at(4096, "EFI PART"):
		return GPT
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xEF53:
		return Ext4
	case isFAT(b):
		return FAT
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA:
		return MBR
	case isInitramfs(b):
		return Cpio
	}
	return Unknown
}

// isFAT recognises a FAT boot sector: a jump, a sane sector size and the
// file system type string where FAT12/16 or FAT32 keep it.
func isFAT(b []byte) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA || (b[0] != 0xEB && b[0] != 0xE9) {
		return false
	}
	switch binary.LittleEndian.Uint16(b[11:]) {
	case 512, 1024, 2048, 4096:
	default:
		return false
	}
	return bytes.HasPrefix(b[54:], []byte("FAT")) || bytes.HasPrefix(b[82:], []byte("FAT32"))
}

// isInitramfs recognises what the kernel unpacks: a cpio archive (perhaps
// after zero padding) or a compressed stream of one.
func isInitramfs(b []byte) bool {
	b = bytes.TrimLeft(b, "\x00")
	for _, magic := range []string{
		"070701", "070702", // cpio newc, crc
		"\x1f\x8b",                // gzip
		"\x28\xb5\x2f\xfd",        // zstd
		"\xfd7zXZ\x00",            // xz
		"\x02\x21\x4c\x18",        // lz4 legacy frame
		"BZh",                     // bzip2
		"\x5d\x00\x00",            // lzma
		"\x89LZO\x00\x0d\x0a\x1a", // lzop
	} {
		if bytes.HasPrefix(b, []byte(magic)) {
			return true
		}
	}
	return false
}
