package contents

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/osimagefs/osimagefs/contents/cpio"
	"github.com/osimagefs/osimagefs/contents/ext4"
	"github.com/osimagefs/osimagefs/contents/fat"
	"github.com/osimagefs/osimagefs/contents/iso9660"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/part"
	"github.com/osimagefs/osimagefs/contents/squashfs"
)

// ErrUnrecognised says a layer holds no format this package reads.
var ErrUnrecognised = errors.New("no file system, archive or partition table recognised")

type openFunc func(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error)

// fileSystems are the formats a layer or a partition may hold.
func fileSystems() map[Format]openFunc {
	return map[Format]openFunc{
		Squashfs: squashfs.Open,
		ISO9660:  iso9660.Open,
		Ext4:     ext4.Open,
		FAT:      fat.Open,
		Cpio:     cpio.Open,
	}
}

// Open recognises what the size bytes of r hold and opens it; name says
// which layer it is in log lines and errors. A format that is not
// recognised, or whose metadata is corrupt, gives an empty Tree and one
// log line saying why; an error is returned only when r could not be read
// (a failed fetch), so the caller may try again.
func Open(ctx context.Context, r node.ReaderAt, size int64, name string, opt node.Options) (*Tree, error) {
	fs, format, err := open(ctx, fetching{r}, size, name, opt, true)
	if err != nil {
		return nil, err
	}
	return newTree(fs, format, name, opt), nil
}

// open opens what r holds; a partition table only where disk is set (a
// partition holds a file system, not another disk).
func open(ctx context.Context, r node.ReaderAt, size int64, name string, opt node.Options, disk bool) (node.FS, Format, error) {
	h, err := readHeads(ctx, r, size)
	if err != nil {
		return nil, Unknown, fmt.Errorf("read the first bytes of %s: %w", name, err)
	}
	format := detect(h)
	log := opt.Logger()
	fail := func(err error) (node.FS, Format, error) {
		if IsFetchError(err) {
			return nil, Unknown, fmt.Errorf("open %s as %s: %w", name, format, err)
		}
		// A structure that points past the end of the image is corrupt
		// too; a variant the reader does not support is not recognised.
		if errors.Is(err, node.ErrCorrupt) || errors.Is(err, ErrUnrecognised) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errors.ErrUnsupported) {
			log.Warn("contents: showing an empty directory", "layer", name, "format", format, "why", err)
			return emptyFS{}, Unknown, nil
		}
		return nil, Unknown, fmt.Errorf("open %s as %s: %w", name, format, err)
	}
	switch format {
	case Unknown:
		return fail(ErrUnrecognised)
	case GPT, MBR:
		if !disk {
			return fail(fmt.Errorf("a partition table inside a partition: %w", ErrUnrecognised))
		}
		all, err := readPartitions(ctx, r, size, opt)
		if err != nil {
			return fail(err)
		}
		// An MBR's extended partition holds the logical ones, no file system.
		var ps []part.Partition
		for _, p := range all {
			if !p.Extended() {
				ps = append(ps, p)
			}
		}
		if len(ps) == 0 {
			return fail(fmt.Errorf("%s partition table with no partitions: %w", format, ErrUnrecognised))
		}
		return newDisk(ps, func(ctx context.Context, p part.Partition) (node.FS, error) {
			fs, _, err := open(ctx, node.Section{R: r, Off: p.Start, Size: p.Size}, p.Size, fmt.Sprintf("%s partition %d", name, p.Number), opt, false)
			return fs, err
		}), format, nil
	}
	fs, err := openFS(ctx, fileSystems()[format], r, size, opt)
	if err != nil {
		return fail(err)
	}
	return fs, format, nil
}

// openFS runs a format's Open with its panic made an error like
// everything else read from an image.
func openFS(ctx context.Context, open openFunc, r node.ReaderAt, size int64, opt node.Options) (fs node.FS, err error) {
	defer recovered("open", &err)
	return open(ctx, r, size, opt)
}

// recovered turns a panic of a reader into an error wrapping
// node.ErrCorrupt; deferred by whatever calls into one.
func recovered(what string, errp *error) {
	if v := recover(); v != nil {
		*errp = fmt.Errorf("%s: the reader failed: %v: %w", what, v, node.ErrCorrupt)
	}
}

// readPartitions reads the partition table, with a reader's panic made an
// error like everything else read from an image.
func readPartitions(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (ps []part.Partition, err error) {
	defer recovered("partition table", &err)
	return part.Read(ctx, r, size, opt)
}
