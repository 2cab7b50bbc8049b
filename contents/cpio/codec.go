package cpio

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// codec is a compression the kernel detects by its magic.
type codec int

const (
	codecNone codec = iota
	codecGzip
	codecZstd
	codecXZ
	codecLZ4
	codecBzip2
	codecLZMA
	codecLZO
)

var codecNames = [...]string{"none", "gzip", "zstd", "xz", "lz4", "bzip2", "lzma", "lzo"}

func (c codec) String() string { return codecNames[c] }

// maxWindow bounds the dictionary (xz, lzma) or window (zstd) a stream may
// ask for: the decoder allocates it.
const maxWindow = 64 << 20

// detect names the compression whose magic b starts with, as the kernel's
// decompress_method does; codecNone if none.
func detect(b []byte) codec {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return codecGzip
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return codecZstd
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return codecXZ
	case bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}):
		return codecLZ4
	case bytes.HasPrefix(b, []byte("BZh")):
		return codecBzip2
	case bytes.HasPrefix(b, []byte{0x5d, 0, 0}):
		return codecLZMA
	case bytes.HasPrefix(b, []byte{0x89, 'L', 'Z', 'O'}):
		return codecLZO
	}
	return codecNone
}

// decoder is a decompressed stream. over is how many bytes of input the
// decoder read past the end of its stream, known once Read returned io.EOF.
type decoder struct {
	r     io.Reader
	close func()
	c     codec
	over  int
	eof   bool // the stream ended: never read the input again
}

// errors the decoders return where a stream is followed by other data;
// they are not exported, so we know them by their text.
const (
	xzTrailing    = "xz: unexpected data after stream"
	bzip2Trailing = "bad magic value in continuation file"
)

// Read reads decompressed bytes, turning the end of one stream followed
// by more input into io.EOF.
func (d *decoder) Read(p []byte) (int, error) {
	if d.eof {
		return 0, io.EOF
	}
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		switch {
		case d.c == codecXZ && err.Error() == xzTrailing:
			d.over, err = 1, io.EOF
		case d.c == codecBzip2 && err.Error() == bzip2Trailing:
			d.over, err = 2, io.EOF
		}
	}
	d.eof = err == io.EOF
	return n, err
}

// newDecoder starts decompressing in, which must stop exactly at the end
// of the stream's input only for gzip and zstd (scan says why): the others
// read exactly what they need from a bufio.Reader, or tell by their error.
func newDecoder(c codec, in *bufio.Reader, scan bool) (*decoder, error) {
	d := &decoder{c: c, close: func() {}}
	switch c {
	case codecGzip:
		z, err := gzip.NewReader(in)
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		d.r = z
	case codecZstd:
		var src io.Reader = in
		if scan {
			src = &zstdFrames{br: in}
		}
		z, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxWindow))
		if err != nil {
			return nil, err
		}
		d.r, d.close = z, z.Close
	case codecXZ:
		if err := xzDictOK(in); err != nil {
			return nil, err
		}
		// DictCap at its least: the stream says how much it needs.
		z, err := xz.ReaderConfig{SingleStream: true, DictCap: lzma.MinDictCap}.NewReader(in)
		if err != nil {
			return nil, err
		}
		d.r = z
	case codecLZ4:
		d.r = &lz4Legacy{br: in}
	case codecBzip2:
		d.r = bzip2.NewReader(in)
	case codecLZMA:
		h, err := in.Peek(13)
		if err != nil {
			return nil, err
		}
		if dict := binary.LittleEndian.Uint32(h[1:5]); dict > maxWindow {
			return nil, fmt.Errorf("lzma dictionary of %d bytes, more than %d", dict, maxWindow)
		}
		z, err := lzma.NewReader(in)
		if err != nil {
			return nil, err
		}
		d.r = z
	default:
		return nil, fmt.Errorf("%v compression: %w", c, errors.ErrUnsupported)
	}
	return d, nil
}

// xzDictOK checks the dictionary size of the first block of the xz stream
// at the start of in, which the decoder would allocate whatever it is.
// Later blocks are not checked: the decoder takes them as they come.
func xzDictOK(in *bufio.Reader) error {
	b, _ := in.Peek(12 + 1024)
	if len(b) < 13 || b[12] == 0 {
		return nil // no block: the decoder says what is wrong
	}
	bh := b[12:]
	hl := (int(bh[0]) + 1) * 4
	if len(bh) < hl {
		return nil
	}
	bh = bh[2:hl]
	flags := b[13]
	varint := func() (uint64, bool) {
		v, n := binary.Uvarint(bh)
		if n <= 0 {
			return 0, false
		}
		bh = bh[n:]
		return v, true
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := varint(); !ok {
				return nil
			}
		}
	}
	for range int(flags&3) + 1 {
		id, ok1 := varint()
		np, ok2 := varint()
		if !ok1 || !ok2 || uint64(len(bh)) < np {
			return nil
		}
		if id == 0x21 && np == 1 {
			if dc, err := lzma.DecodeDictCap(bh[0]); err == nil && dc > maxWindow {
				return fmt.Errorf("xz dictionary of %d bytes, more than %d", dc, maxWindow)
			}
		}
		bh = bh[np:]
	}
	return nil
}
