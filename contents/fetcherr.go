package contents

import (
	"context"
	"errors"
	"io"

	"github.com/osimagefs/osimagefs/contents/node"
)

// fetchError marks an error of the layer's reader (a fetch that failed)
// as it passes through a format's reader, so that it is told apart from
// what the image gets wrong: it is tried again, never taken for an empty
// or corrupt image.
type fetchError struct{ err error }

func (e fetchError) Error() string { return e.err.Error() }

// Is answers for the error it carries, except io.EOF and
// io.ErrUnexpectedEOF: a body cut short by the network does not make the
// image shorter than it says.
func (e fetchError) Is(target error) bool {
	if target == io.EOF || target == io.ErrUnexpectedEOF {
		return false
	}
	return errors.Is(e.err, target)
}

// IsFetchError reports whether err came from the layer's reader.
func IsFetchError(err error) bool {
	var fe fetchError
	return errors.As(err, &fe)
}

// fetching is a layer's reader whose errors are fetchErrors; io.EOF, the
// end of the layer, passes as it is.
type fetching struct{ r node.ReaderAt }

func (f fetching) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	n, err := f.r.ReadAt(ctx, p, off)
	if err != nil && err != io.EOF {
		err = fetchError{err}
	}
	return n, err
}
