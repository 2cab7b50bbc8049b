package part

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Partition is one entry of a partition table.
type Partition struct {
	// Number is Linux's: a GPT entry's index + 1; 1..4 for MBR primaries,
	// 5.. for logical partitions in the order of the EBR chain.
	Number int
	// Start and Size are in bytes from the start of the disk.
	Start, Size int64
	// Type is the GPT type GUID as text ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// or the MBR type byte as "0x83".
	Type string
	// Name is the GPT partition name; MBR has none.
	Name string
}

// Extended reports whether p is an MBR extended partition: a container of
// the logical partitions, with no file system of its own.
func (p Partition) Extended() bool {
	return isExtended(p.Type)
}

// headLen is what Read fetches at once: the MBR, a GPT header and a
// 128-entry array for 512-byte (0..17 KiB) and 4096-byte (0..24 KiB) sectors.
const headLen = 24 << 10

// Read returns the partitions of the disk r of size bytes, or (nil, nil)
// when it has no partition table.
func Read(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) ([]Partition, error) {
	d := &disk{r: r, size: size, log: opt.Logger()}
	head := make([]byte, min(headLen, max(size, 0)))
	if err := d.read(ctx, head, 0, "disk head"); err != nil {
		return nil, err
	}
	d.head = head
	m, ok := parseMBR(head)
	if !ok {
		return nil, nil
	}
	if m.protective() {
		return d.gpt(ctx)
	}
	return d.mbr(ctx, m)
}

// disk is one Read's state: the reader and the first bytes of the disk.
type disk struct {
	r    node.ReaderAt
	size int64
	head []byte
	log  interface {
		Info(msg string, args ...any)
	}
}

// read fills p from off, taking what the head already holds.
func (d *disk) read(ctx context.Context, p []byte, off int64, what string) error {
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return fmt.Errorf("part: %s at %d (%d bytes): %w: beyond the disk's %d bytes", what, off, len(p), node.ErrCorrupt, d.size)
	}
	if off+int64(len(p)) <= int64(len(d.head)) {
		copy(p, d.head[off:])
		return nil
	}
	n, err := d.r.ReadAt(ctx, p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("part: reading %s at %d: %w", what, off, err)
}
