package contents

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/part"
)

// disk is a partitioned disk: its root lists p1, p2, ... by partition
// number, and each of those is the root of the file system inside that
// partition, opened when first listed, so that listing the disk reads
// nothing more. Objects are numbered slot<<48 | their Ino in the
// partition's file system; slot 0 is the disk's root, and slot<<48 alone
// (no format uses Ino 0) the partition's root.
type disk struct {
	root  rootDir
	parts []*partition // by slot-1
}

// partition is one partition and, once opened, its file system.
type partition struct {
	p    part.Partition
	open func(ctx context.Context) (node.FS, error)

	mu sync.Mutex
	fs node.FS // nil until opened
}

const slotShift = 48

// maxPartitions is the most partitions a disk shows (the Ino slot has 16 bits).
const maxPartitions = 1<<(64-slotShift) - 1

func newDisk(ps []part.Partition, open func(ctx context.Context, p part.Partition) (node.FS, error)) *disk {
	d := &disk{}
	for _, p := range ps[:min(len(ps), maxPartitions)] {
		d.parts = append(d.parts, &partition{p: p, open: func(ctx context.Context) (node.FS, error) { return open(ctx, p) }})
	}
	return d
}

func (d *disk) Root() node.Ino { return 1 }

// split returns the partition and partition-local Ino of ino; nil for the
// disk's root.
func (d *disk) split(ctx context.Context, ino node.Ino) (*partition, node.FS, node.Ino, error) {
	slot := int(ino >> slotShift)
	if slot == 0 {
		if ino != 1 {
			return nil, nil, 0, fmt.Errorf("disk: inode %d: %w", ino, syscall.ENOENT)
		}
		return nil, nil, 0, nil
	}
	if slot > len(d.parts) {
		return nil, nil, 0, fmt.Errorf("disk: partition slot %d of %d: %w", slot, len(d.parts), syscall.ENOENT)
	}
	p := d.parts[slot-1]
	fs, err := p.get(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	sub := ino & (1<<slotShift - 1)
	if sub == 0 {
		sub = fs.Root()
	}
	return p, fs, sub, nil
}

// get opens the partition's file system once; an error other than
// corruption (a failed fetch) is tried again next time.
func (p *partition) get(ctx context.Context) (node.FS, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fs != nil {
		return p.fs, nil
	}
	fs, err := p.open(ctx)
	if err != nil {
		if !errors.Is(err, node.ErrCorrupt) {
			return nil, fmt.Errorf("partition %d: %w", p.p.Number, err)
		}
		fs = emptyFS{}
	}
	p.fs = fs
	return fs, nil
}

func (d *disk) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	if slot := int(ino >> slotShift); ino&(1<<slotShift-1) == 0 && slot >= 1 && slot <= len(d.parts) {
		return d.root.attr(), nil // a partition's root, without opening it
	}
	p, fs, sub, err := d.split(ctx, ino)
	if err != nil {
		return node.Attr{}, err
	}
	if p == nil {
		return d.root.attr(), nil
	}
	return fs.Attr(ctx, sub)
}

func (d *disk) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	p, fs, sub, err := d.split(ctx, ino)
	if err != nil {
		return nil, err
	}
	if p == nil {
		out := make([]node.DirEntry, 0, len(d.parts))
		for i, p := range d.parts {
			out = append(out, node.DirEntry{Name: "p" + strconv.Itoa(p.p.Number), Ino: node.Ino(i+1) << slotShift})
		}
		return out, nil
	}
	ents, err := fs.ReadDir(ctx, sub)
	if err != nil {
		return nil, err
	}
	slot := node.Ino(ino >> slotShift)
	for i := range ents {
		switch e := ents[i].Ino; {
		case e == 0 || e > node.MaxIno:
			return nil, fmt.Errorf("partition %d: inode %d out of range: %w", p.p.Number, e, node.ErrCorrupt)
		case e == fs.Root():
			ents[i].Ino = slot << slotShift // the partition's root, by the number its directory has
		default:
			ents[i].Ino |= slot << slotShift
		}
	}
	return ents, nil
}

func (d *disk) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	p, fs, sub, err := d.split(ctx, ino)
	if err != nil {
		return "", err
	}
	if p == nil {
		return "", node.ErrNotLink
	}
	return fs.Readlink(ctx, sub)
}

func (d *disk) ReadAt(ctx context.Context, ino node.Ino, b []byte, off int64) (int, error) {
	p, fs, sub, err := d.split(ctx, ino)
	if err != nil {
		return 0, err
	}
	if p == nil {
		return 0, node.ErrNotFile
	}
	return fs.ReadAt(ctx, sub, b, off)
}
