package profile

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// ErrNotInImage: an entry names a blob that is no layer of the image, or
// bytes past the end of its layer.
var ErrNotInImage = errors.New("not in the image")

// Check holds entries against the layers of an image, by digest and size:
// each entry must name one of them, and end within it. The first entry at
// fault is named (an *EntryError wrapping ErrNotInImage).
func Check(entries []Entry, layers map[digest.Digest]int64) error {
	for i, e := range entries {
		size, ok := layers[e.Digest]
		switch {
		case !ok:
			return &EntryError{Index: i, Err: fmt.Errorf("%w: digest %s is no layer of the image", ErrNotInImage, e.Digest)}
		case e.End() > size:
			return &EntryError{Index: i, Err: fmt.Errorf("%w: bytes %d-%d are past the end of layer %s (%d bytes)", ErrNotInImage, e.Off, e.End()-1, e.Digest, size)}
		}
	}
	return nil
}
