package cpio

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// The kernel's lz4 initramfs is the legacy frame `lz4 -l` writes: a magic,
// then chunks of [4-byte LE compressed size][LZ4 block], each block
// decompressing to lz4LegacyBlock bytes but the last. github.com/pierrec/lz4
// reads only the current frame format, so we walk the framing and use its
// block decoder.
const (
	lz4LegacyMagic = 0x184C2102
	lz4LegacyBlock = 8 << 20
	// lz4MaxChunk is LZ4_COMPRESSBOUND(lz4LegacyBlock).
	lz4MaxChunk = lz4LegacyBlock + lz4LegacyBlock/255 + 16
)

// lz4Legacy decompresses a legacy lz4 stream from br. It ends (io.EOF,
// leaving the rest of br unread) at the end of br, at a chunk size of 0 or
// over the bound, or after a short chunk that no new magic follows: a
// stream's last chunk is short, and what follows belongs to the next segment.
type lz4Legacy struct {
	br       *bufio.Reader
	started  bool
	last     bool // the previous chunk was short
	src, out []byte
	outI     int
}

func (z *lz4Legacy) Read(p []byte) (int, error) {
	for z.outI == len(z.out) {
		more, err := z.chunk()
		if err != nil {
			return 0, err
		}
		if !more {
			return 0, io.EOF
		}
	}
	n := copy(p, z.out[z.outI:])
	z.outI += n
	return n, nil
}

// chunk decompresses the next chunk into out.
func (z *lz4Legacy) chunk() (bool, error) {
	for {
		b, _ := z.br.Peek(4)
		if len(b) < 4 {
			if !z.started {
				return false, io.ErrUnexpectedEOF
			}
			return false, nil
		}
		v := binary.LittleEndian.Uint32(b)
		if v == lz4LegacyMagic {
			z.started, z.last = true, false
			_, _ = z.br.Discard(4)
			continue
		}
		if !z.started {
			return false, fmt.Errorf("lz4: no legacy magic")
		}
		if z.last || v == 0 || v > lz4MaxChunk {
			return false, nil
		}
		_, _ = z.br.Discard(4)
		if cap(z.src) < int(v) {
			z.src = make([]byte, v)
		}
		src := z.src[:v]
		if _, err := io.ReadFull(z.br, src); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
		if z.out == nil {
			z.out = make([]byte, lz4LegacyBlock)
		}
		n, err := lz4.UncompressBlock(src, z.out[:lz4LegacyBlock])
		if err != nil {
			return false, fmt.Errorf("lz4 block: %w", err)
		}
		z.out, z.outI = z.out[:n], 0
		z.last = n < lz4LegacyBlock
		if n > 0 {
			return true, nil
		}
	}
}
