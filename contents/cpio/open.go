package cpio

import (
	"context"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// maxStream bounds the decompressed length of one compressed segment, so
// that a decompression bomb ends as a corrupt image.
const maxStream = 4 << 30

// Open scans the initramfs image r of size bytes and returns its index.
func Open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options) (node.FS, error) {
	return open(ctx, r, size, opt, maxStream)
}

// open is Open with the bound on a decompressed segment given.
func open(ctx context.Context, r node.ReaderAt, size int64, opt node.Options, maxOut int64) (*FS, error) {
	if size < 0 {
		return nil, fmt.Errorf("cpio: negative size %d: %w", size, node.ErrCorrupt)
	}
	lim := opt.Limits.Or()
	fs := &FS{r: r, size: size, space: opt.Blocks.Space(), piece: min(defaultPiece, int64(lim.Block)),
		cached: opt.Blocks != nil}
	fs.entries = []entry{implicitDir()}
	b := &builder{fs: fs, lim: lim, log: opt.Logger(), paths: map[string]slot{}}
	sc := &scan{builder: b, ctx: ctx, r: r, size: size, maxStream: maxOut}
	if err := sc.image(); err != nil {
		return nil, err
	}
	if b.dropped > 0 {
		b.log.Warn("cpio: members dropped", "count", b.dropped)
	}
	return fs, nil
}
