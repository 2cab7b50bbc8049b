package cpio

import (
	"bufio"
	"encoding/binary"
	"io"
)

// zstdFrames passes through the zstd frames (and skippable frames) at the
// start of br and ends with io.EOF after the last of them, so that the
// scan knows where the compressed segment ends and what follows it
// starts: the zstd decoder reads ahead and cannot say how much it used.
// It walks only the frame and block headers; the decoder checks the rest.
type zstdFrames struct {
	br    *bufio.Reader
	left  int64 // bytes of the current unit not yet passed on
	state int
	seen  bool // a frame was passed on
}

const (
	zsFrame = iota
	zsBlock
	zsDone
	zsChecksumThenFrame
)

func (z *zstdFrames) Read(p []byte) (int, error) {
	for z.left == 0 {
		if z.state == zsDone {
			return 0, io.EOF
		}
		if err := z.next(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > z.left {
		p = p[:z.left]
	}
	n, err := z.br.Read(p)
	z.left -= int64(n)
	if err == io.EOF && z.left > 0 {
		err = io.ErrUnexpectedEOF
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// next sets left to the length of the unit at the reader's position.
func (z *zstdFrames) next() error {
	switch z.state {
	case zsFrame:
		b, _ := z.br.Peek(4)
		if len(b) < 4 {
			z.state = zsDone
			return nil
		}
		m := binary.LittleEndian.Uint32(b)
		switch {
		case m == 0xFD2FB528:
			b, _ = z.br.Peek(5)
			if len(b) < 5 {
				return io.ErrUnexpectedEOF
			}
			fhd := b[4]
			n := int64(5)
			single := fhd&0x20 != 0
			if !single {
				n++
			}
			n += [4]int64{0, 1, 2, 4}[fhd&3]
			fcs := [4]int64{0, 2, 4, 8}[fhd>>6]
			if fcs == 0 && single {
				fcs = 1
			}
			z.left = n + fcs
			z.state = zsBlock
			if fhd&4 != 0 {
				z.state = zsBlock | 0x10 // checksum after the last block
			}
			z.seen = true
		case m&0xFFFFFFF0 == 0x184D2A50 && z.seen:
			b, _ = z.br.Peek(8)
			if len(b) < 8 {
				return io.ErrUnexpectedEOF
			}
			z.left = 8 + int64(binary.LittleEndian.Uint32(b[4:]))
		default:
			z.state = zsDone
		}
	case zsBlock, zsBlock | 0x10:
		b, _ := z.br.Peek(3)
		if len(b) < 3 {
			return io.ErrUnexpectedEOF
		}
		h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		size := int64(h >> 3)
		if (h>>1)&3 == 1 { // RLE: one byte on the wire
			size = 1
		}
		z.left = 3 + size
		if h&1 != 0 {
			if z.state&0x10 != 0 {
				z.state = zsChecksumThenFrame
			} else {
				z.state = zsFrame
			}
		}
	case zsChecksumThenFrame:
		z.left = 4
		z.state = zsFrame
	}
	return nil
}
