package node

import (
	"context"
	"io"
)

// Section is the part of a ReaderAt from Off for Size bytes: a partition of
// a disk. Reads past its end return io.EOF.
type Section struct {
	R         ReaderAt
	Off, Size int64
}

// ReadAt reads p from the section at off.
func (s Section) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= s.Size {
		return 0, io.EOF
	}
	short := false
	if rest := s.Size - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := s.R.ReadAt(ctx, p, s.Off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}
