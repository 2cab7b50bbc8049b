package cpio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
)

// defaultPiece is how much of a decompressed stream one cache block holds.
const defaultPiece = 256 << 10

// inBuf is the buffer for reading compressed input from the image.
const inBuf = 256 << 10

// segment is one compressed stream of the image: its bytes in the image,
// its decompressed length, and the decompressor in use for reads, kept so
// that reading on from where the last read stopped needs no restart.
type segment struct {
	c      codec
	off, n int64 // compressed bytes in the image
	out    int64 // decompressed length
	base   int64 // cache key of decompressed offset 0
	mu     sync.Mutex
	cur    *cursor
}

// cursor is a decompressor positioned at pos of its segment's stream.
type cursor struct {
	at  *atReader
	dec *decoder
	pos int64
}

func (s *segment) String() string { return fmt.Sprintf("%v segment at %d", s.c, s.off) }

// readSegment reads p at off of the decompressed stream of s.
func (f *FS) readSegment(ctx context.Context, s *segment, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		k := off / f.piece
		b, err := f.space.Get(s.base+k*f.piece, func() ([]byte, error) { return f.load(ctx, s, k) })
		if err != nil {
			return n, err
		}
		i := off - k*f.piece
		if i >= int64(len(b)) {
			return n, fmt.Errorf("%v: offset %d past its end %d: %w", s, off, s.out, node.ErrCorrupt)
		}
		c := copy(p[n:], b[i:])
		n += c
		off += int64(c)
	}
	return n, nil
}

// load decompresses piece k of s: on from the cursor if it is not past the
// piece, else from the start of the segment.
func (f *FS) load(ctx context.Context, s *segment, k int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := k * f.piece
	if start >= s.out {
		return nil, fmt.Errorf("%v: piece at %d past its end %d: %w", s, start, s.out, node.ErrCorrupt)
	}
	if s.cur != nil && s.cur.pos > start {
		s.cur.dec.close()
		s.cur = nil
	}
	if s.cur == nil {
		at := &atReader{ctx: ctx, r: f.r, off: s.off, end: s.off + s.n}
		dec, err := newDecoder(s.c, bufio.NewReaderSize(at, inBuf), false)
		if err != nil {
			return nil, decodeErr(s, 0, at, err)
		}
		s.cur = &cursor{at: at, dec: dec}
	}
	cur := s.cur
	cur.at.ctx = ctx
	buf := make([]byte, min(f.piece, s.out-start))
	fail := func(err error) ([]byte, error) {
		cur.dec.close()
		s.cur = nil
		return nil, decodeErr(s, cur.pos, cur.at, err)
	}
	if skip := start - cur.pos; skip > 0 {
		m, err := io.CopyN(io.Discard, cur.dec, skip)
		cur.pos += m
		if err != nil {
			return fail(err)
		}
	}
	m, err := io.ReadFull(cur.dec, buf)
	cur.pos += int64(m)
	if err != nil {
		return fail(err)
	}
	return buf, nil
}

// decodeErr says what went wrong decompressing s at pos: an error of the
// image's reader is passed on, anything else is a corrupt stream.
func decodeErr(s *segment, pos int64, at *atReader, err error) error {
	switch {
	case at.err != nil:
		return fmt.Errorf("%v: decompressing at %d: %w", s, pos, at.err)
	case errors.Is(err, node.ErrCorrupt), errors.Is(err, errors.ErrUnsupported):
		return fmt.Errorf("%v: decompressing at %d: %w", s, pos, err)
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%v: decompressing at %d: %w: %v", s, pos, node.ErrCorrupt, err)
}

// filler is the decompressed stream of a segment during the scan: it
// counts what it passes, stops a stream that grows past max, and puts
// every piece into the block cache on the way.
type filler struct {
	r     io.Reader
	pos   int64
	max   int64
	space blockcache.Space
	cache bool
	base  int64
	piece int64
	buf   []byte
	bufAt int64 // decompressed offset of buf[0]
}

var errBomb = errors.New("decompressed stream too large")

func (f *filler) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.pos+int64(n) > f.max {
		return 0, fmt.Errorf("%w: %w: more than %d bytes", node.ErrCorrupt, errBomb, f.max)
	}
	if f.cache {
		o := f.pos
		for b := p[:n]; len(b) > 0; {
			if f.buf == nil {
				f.buf, f.bufAt = make([]byte, 0, f.piece), o
			}
			c := min(len(b), int(f.piece)-len(f.buf))
			f.buf = append(f.buf, b[:c]...)
			b = b[c:]
			o += int64(c)
			if len(f.buf) == int(f.piece) {
				f.flush()
			}
		}
		if err == io.EOF {
			f.flush()
		}
	}
	f.pos += int64(n)
	return n, err
}

// flush puts the piece being filled into the cache.
func (f *filler) flush() {
	if len(f.buf) == 0 {
		return
	}
	b := f.buf
	_, _ = f.space.Get(f.base+f.bufAt, func() ([]byte, error) { return b, nil })
	f.buf = nil
}
