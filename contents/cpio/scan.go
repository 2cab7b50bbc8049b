package cpio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// scan is one pass over the image, feeding the builder.
type scan struct {
	*builder
	ctx       context.Context
	r         node.ReaderAt
	size      int64
	maxStream int64
	rawErr    *atReader // the image reader, whose errors are passed on
}

// fail says what went wrong reading what at pos of s: an error of the
// image's reader or of the context is passed on, anything else means the
// image is corrupt.
func (sc *scan) fail(s *scanner, at *atReader, what string, pos int64, err error) error {
	where := "image"
	if s.seg >= 0 {
		where = sc.fs.segs[s.seg].String()
	}
	switch {
	case at != nil && at.err != nil:
		return fmt.Errorf("cpio: %s at %d of %s: %w", what, pos, where, at.err)
	case errors.Is(err, node.ErrCorrupt), errors.Is(err, errors.ErrUnsupported),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cpio: %s at %d of %s: %w", what, pos, where, err)
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("cpio: %s at %d of %s: %w: %v", what, pos, where, node.ErrCorrupt, err)
}

// image walks the segments of the image: zero padding, uncompressed cpio
// archives and compressed streams, as unpack_to_rootfs does.
func (sc *scan) image() error {
	at := &atReader{ctx: sc.ctx, r: sc.r, end: sc.size}
	s := &scanner{br: bufio.NewReaderSize(at, 64<<10), raw: at, seg: -1}
	for s.pos < sc.size {
		if err := sc.ctx.Err(); err != nil {
			return err
		}
		b, err := s.peek(6)
		if len(b) == 0 {
			return sc.fail(s, at, "segment", s.pos, err)
		}
		switch {
		case b[0] == 0:
			if err := s.skipZeros(); err != nil {
				return sc.fail(s, at, "padding", s.pos, err)
			}
		case b[0] == '0' && s.pos%4 == 0:
			if err := sc.archive(s, at); err != nil {
				return err
			}
		default:
			c := detect(b)
			if c == codecNone {
				return sc.fail(s, at, "segment", s.pos, fmt.Errorf("invalid magic % x at start of compressed archive", b))
			}
			n, err := sc.compressed(c, s.pos)
			if err != nil {
				return err
			}
			s.seek(s.pos + n)
		}
	}
	return nil
}

// compressed scans the compressed segment at pos and returns its length.
func (sc *scan) compressed(c codec, pos int64) (int64, error) {
	node.Prefetch(sc.ctx, sc.r, []node.Range{{Off: pos, Len: sc.size - pos}})
	base := int64(0)
	if n := len(sc.fs.segs); n > 0 {
		last := sc.fs.segs[n-1]
		base = last.base + (last.out+sc.fs.piece-1)/sc.fs.piece*sc.fs.piece
	}
	seg := &segment{c: c, off: pos, base: base}
	sc.fs.segs = append(sc.fs.segs, seg)
	at := &atReader{ctx: sc.ctx, r: sc.r, off: pos, end: sc.size}
	in := bufio.NewReaderSize(at, inBuf)
	s := &scanner{seg: int32(len(sc.fs.segs) - 1)}
	dec, err := newDecoder(c, in, true)
	if err != nil {
		return 0, sc.fail(s, at, "decompressor header", 0, err)
	}
	defer dec.close()
	f := &filler{r: dec, max: sc.maxStream, space: sc.fs.space, cache: sc.fs.cached,
		base: base, piece: sc.fs.piece}
	s.br = bufio.NewReaderSize(f, 64<<10)
	if err := sc.stream(s, at); err != nil {
		return 0, err
	}
	seg.out = f.pos
	seg.n = at.off - pos - int64(in.Buffered()) - int64(dec.over)
	if seg.n <= 0 {
		return 0, sc.fail(s, at, "end of stream", 0, errors.New("empty compressed segment"))
	}
	return seg.n, nil
}

// stream scans the decompressed stream s: cpio archives and zero padding,
// to its end, which must not fall inside an archive.
func (sc *scan) stream(s *scanner, at *atReader) error {
	for {
		if err := s.skipZeros(); err != nil {
			return sc.fail(s, at, "padding", s.pos, err)
		}
		b, err := s.peek(1)
		if len(b) == 0 {
			if err == io.EOF {
				return nil
			}
			return sc.fail(s, at, "archive", s.pos, err)
		}
		if b[0] != '0' {
			return sc.fail(s, at, "archive", s.pos, fmt.Errorf("junk %#x within compressed archive", b[0]))
		}
		if s.pos%4 != 0 {
			return sc.fail(s, at, "archive", s.pos, errors.New("broken padding: header not at a multiple of 4"))
		}
		if err := sc.archive(s, at); err != nil {
			return err
		}
	}
}

// archive scans one cpio archive, up to and with its TRAILER!!!.
func (sc *scan) archive(s *scanner, at *atReader) error {
	sc.links = map[linkKey]node.Ino{}
	var hb [headerLen]byte
	var name []byte
	for {
		if err := sc.ctx.Err(); err != nil {
			return err
		}
		start := s.pos
		if err := s.readFull(hb[:]); err != nil {
			return sc.fail(s, at, "member header", start, err)
		}
		h, err := parseHeader(hb[:])
		if err != nil {
			return sc.fail(s, at, "member header", start, fmt.Errorf("%w: %w", node.ErrCorrupt, err))
		}
		typ := h.mode & syscall.S_IFMT
		dataLen := int64(h.filesize) + pad4(int64(h.filesize))
		nameLen := int64(h.namesize) + pad4(headerLen+int64(h.namesize))
		if h.namesize == 0 || h.namesize > pathMax || (typ != syscall.S_IFREG && typ != syscall.S_IFLNK && h.filesize != 0) {
			// The kernel skips such a member without looking at its name.
			sc.dropped++
			sc.log.Warn("cpio: member skipped", "at", start, "namesize", h.namesize, "mode", h.mode, "filesize", h.filesize)
			if err := sc.skipChecked(s, nameLen+dataLen); err != nil {
				return sc.fail(s, at, "member", start, err)
			}
			continue
		}
		name = append(name[:0], make([]byte, nameLen)...)
		if err := s.readFull(name); err != nil {
			return sc.fail(s, at, "member name", start, err)
		}
		if name[h.namesize-1] != 0 {
			return sc.fail(s, at, "member name", start, fmt.Errorf("%w: name without NUL terminator", node.ErrCorrupt))
		}
		m := &member{h: h, name: string(name[:h.namesize-1]), seg: s.seg, off: s.pos}
		if m.name == "TRAILER!!!" {
			if err := sc.skipChecked(s, dataLen); err != nil && !errors.Is(err, io.EOF) {
				return sc.fail(s, at, "trailer", start, err)
			}
			return nil
		}
		if typ == syscall.S_IFLNK && int(h.filesize) <= sc.lim.LinkBytes {
			t := make([]byte, dataLen)
			if err := s.readFull(t); err != nil {
				return sc.fail(s, at, "symlink target", m.off, err)
			}
			t = t[:h.filesize]
			for i, c := range t {
				if c == 0 {
					t = t[:i]
					break
				}
			}
			m.target = string(t)
		} else if err := sc.skipChecked(s, dataLen); err != nil {
			return sc.fail(s, at, "data of "+m.name, m.off, err)
		}
		if typ == syscall.S_IFLNK && int(h.filesize) > sc.lim.LinkBytes {
			sc.drop(m, "symlink target over Limits.LinkBytes")
			continue
		}
		if err := sc.add(m); err != nil {
			return err
		}
	}
}

// skipChecked skips n bytes; in the image it first checks they are there.
func (sc *scan) skipChecked(s *scanner, n int64) error {
	if s.raw != nil && s.pos+n > sc.size {
		return fmt.Errorf("%w: %d bytes past the end of the image at %d", node.ErrCorrupt, n, sc.size)
	}
	return s.skip(n)
}
