package squashfs

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/zstd"
	"github.com/mikelolasagasti/xz"
	"github.com/pierrec/lz4/v4"
)

// errTooBig says a block decompressed to more than its bound.
var errTooBig = errors.New("decompresses to more than its bound")

// decompressor turns one compressed block into at most limit bytes. It
// is safe for concurrent use; its state is one FS's, never shared.
type decompressor struct {
	name    string
	max     int // the largest limit asked for: the block size
	scratch sync.Pool
	readers sync.Pool // *xz.Reader or zlib reader, reset for each block
	zstd    *zstd.Decoder
	run     func(d *decompressor, src, dst []byte) (int, error)
}

// newDecompressor returns the decompressor of a superblock compression
// id, for data blocks of at most blockSize bytes and metadata blocks.
func newDecompressor(id uint16, blockSize int) (*decompressor, error) {
	blockSize = max(blockSize, metaSize)
	d := &decompressor{max: blockSize}
	// One byte more than the largest block, so that too much output shows.
	d.scratch.New = func() any { b := make([]byte, blockSize+1); return &b }
	switch id {
	case compGzip:
		d.name, d.run = "gzip", (*decompressor).zlib
	case compXZ:
		d.name, d.run = "xz", (*decompressor).xz
	case compLZ4:
		d.name, d.run = "lz4", (*decompressor).lz4
	case compLZO:
		d.name, d.run = "lzo", (*decompressor).lzo
	case compZstd:
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(2),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(blockSize)+1),
			zstd.WithDecoderMaxWindow(uint64(max(blockSize, 1<<20))),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			return nil, fmt.Errorf("squashfs: zstd decoder: %w", err)
		}
		d.name, d.run, d.zstd = "zstd", (*decompressor).zstdBlock, dec
	default:
		return nil, fmt.Errorf("squashfs: compression %d has no decompressor", id)
	}
	return d, nil
}

// decompress returns src decompressed into a new slice of its exact
// length, or errTooBig if that is more than limit (at most the block size).
func (d *decompressor) decompress(src []byte, limit int) ([]byte, error) {
	limit = min(limit, d.max)
	bp := d.scratch.Get().(*[]byte)
	defer d.scratch.Put(bp)
	dst := (*bp)[:limit+1]
	n, err := d.run(d, src, dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	if n > limit {
		return nil, errTooBig
	}
	return bytes.Clone(dst[:n]), nil
}

// readAll reads r into dst, which is one byte longer than the bound: a
// full dst means the block is too big.
func readAll(r io.Reader, dst []byte) (int, error) {
	n, err := io.ReadFull(r, dst)
	switch err {
	case nil:
		return n, errTooBig
	case io.EOF, io.ErrUnexpectedEOF:
		return n, nil
	}
	return n, err
}

// zlib decodes a zlib stream (squashfs "gzip"), checking its adler32.
func (d *decompressor) zlib(src, dst []byte) (int, error) {
	in := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := d.readers.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(in, nil); err != nil {
			return 0, err
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(in); err != nil {
			return 0, err
		}
	}
	n, err := readAll(zr, dst)
	if err == nil {
		d.readers.Put(zr)
	}
	return n, err
}

// xz decodes one xz stream, with whatever BCJ or delta filters it names.
func (d *decompressor) xz(src, dst []byte) (int, error) {
	in := bytes.NewReader(src)
	var xr *xz.Reader
	if v := d.readers.Get(); v != nil {
		xr = v.(*xz.Reader)
		if err := xr.Reset(in); err != nil {
			return 0, err
		}
	} else {
		// mksquashfs keeps the dictionary at most the block size.
		var err error
		if xr, err = xz.NewReader(in, uint32(d.max)); err != nil {
			return 0, err
		}
	}
	n, err := readAll(xr, dst)
	if err == nil {
		d.readers.Put(xr)
	}
	return n, err
}

// lz4 decodes a raw LZ4 block, which cannot write past dst.
func (d *decompressor) lz4(src, dst []byte) (int, error) {
	return lz4.UncompressBlock(src, dst)
}

// lzo decodes an LZO1X block, which cannot write past dst.
func (d *decompressor) lzo(src, dst []byte) (int, error) {
	return lzo.Decompress(src, dst)
}

// zstdBlock decodes zstd frames into dst's capacity and no further.
func (d *decompressor) zstdBlock(src, dst []byte) (int, error) {
	out, err := d.zstd.DecodeAll(src, dst[:0])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return 0, errTooBig
	}
	if err != nil {
		return 0, err
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		return 0, errTooBig
	}
	return len(out), nil
}
