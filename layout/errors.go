package layout

import (
	"errors"
	"fmt"
)

// Sentinel errors, reachable with errors.Is through any wrapping.
var (
	// ErrNotFound: no such layout directory, tag, manifest or blob.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the directory is not a well-formed OCI image layout (no
	// oci-layout file, an unsupported imageLayoutVersion, an index.json
	// that is not an index, a blob file of the wrong size or kind, a path
	// that leaves the layout).
	ErrInvalid = errors.New("not a valid OCI image layout")
	// ErrAmbiguous: a reference without TAG or DIGEST, to a layout that
	// holds several images and none tagged latest.
	ErrAmbiguous = errors.New("ambiguous reference")
	// ErrBadReference: a reference that is not DIR, DIR:TAG or
	// DIR@DIGEST (an empty one, an empty TAG, a DIGEST that is not one).
	ErrBadReference = errors.New("bad layout reference")
	// ErrTooLarge: a document is larger than osimagefs accepts.
	ErrTooLarge = errors.New("document too large")
)

// ShortBlobError: a blob file ends before the range asked for (its
// descriptor claims more bytes than it has).
type ShortBlobError struct {
	Path string // the blob file
	Off  int64  // the first byte asked for that it lacks
	Size int64  // the file's size
}

func (e *ShortBlobError) Error() string {
	return fmt.Sprintf("blob file %s is %d bytes: it ends before byte %d", e.Path, e.Size, e.Off)
}

// BlobSize is the blob file's size; lazy recognises a short blob by this
// method.
func (e *ShortBlobError) BlobSize() int64 { return e.Size }

// kindError is an error of one of the kinds above whose message does not
// repeat the kind's: errors.Is finds the kind, and whatever the message
// wraps.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf is fmt.Errorf for an error of kind.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
