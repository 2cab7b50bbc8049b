package cpio

import (
	"bufio"
	"context"
	"io"

	"github.com/osimagefs/osimagefs/contents/node"
)

// atReader reads r sequentially from off up to end, as an io.Reader for
// bufio and the decoders. An error of r is kept in err, so that it is
// passed on rather than taken for a corrupt image.
type atReader struct {
	ctx      context.Context
	r        node.ReaderAt
	off, end int64
	err      error
}

func (a *atReader) Read(p []byte) (int, error) {
	if a.off >= a.end {
		return 0, io.EOF
	}
	if rest := a.end - a.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := a.r.ReadAt(a.ctx, p, a.off)
	a.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF // r is shorter than its size
	}
	if err != nil && a.err == nil {
		a.err = err
	}
	return n, err
}

// scanner is a stream of cpio archives being parsed: a buffered reader and
// the position in the stream (the image for an uncompressed segment, the
// decompressed stream for a compressed one).
type scanner struct {
	br  *bufio.Reader
	pos int64
	// raw, for the image itself, repositions instead of reading through.
	raw *atReader
	// seg is where members' data is: -1 for the image, else a segment index.
	seg int32
}

func (s *scanner) readFull(p []byte) error {
	n, err := io.ReadFull(s.br, p)
	s.pos += int64(n)
	return err
}

// skip moves n bytes on: an uncompressed stream is repositioned, a
// decompressed one read through.
func (s *scanner) skip(n int64) error {
	if n <= 0 {
		return nil
	}
	if s.raw != nil && n > int64(s.br.Buffered()) {
		s.seek(s.pos + n)
		return nil
	}
	for n > 0 {
		m, err := s.br.Discard(int(min(n, 1<<30)))
		s.pos += int64(m)
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// seek repositions an uncompressed stream at pos.
func (s *scanner) seek(pos int64) {
	s.raw.off = pos
	s.br.Reset(s.raw)
	s.pos = pos
}

// peek returns up to n bytes ahead without moving; fewer only at the end
// or on an error.
func (s *scanner) peek(n int) ([]byte, error) {
	return s.br.Peek(n)
}

// skipZeros moves past a run of NUL bytes.
func (s *scanner) skipZeros() error {
	for {
		if _, err := s.br.Peek(1); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		b, _ := s.br.Peek(s.br.Buffered())
		i := 0
		for i < len(b) && b[i] == 0 {
			i++
		}
		_, _ = s.br.Discard(i)
		s.pos += int64(i)
		if i < len(b) {
			return nil
		}
	}
}
