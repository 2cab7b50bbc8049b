package publish

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
)

// buildTable streams layer l once from the registry (a GET of the whole
// blob, sent again from byte 0 if the connection breaks) into a table
// builder, and returns the table only if the bytes hash to l's digest and
// size: a table of other bytes than the layer's is never published.
func buildTable(ctx context.Context, store *blobstore.Store, l ocispec.Descriptor, path string, rep *reporter) (*integrity.Table, error) {
	if err := l.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("layer %s (%s): %w", l.Digest, path, err)
	}
	b := Blob{Role: image.RoleOf(l.MediaType), Path: path, MediaType: l.MediaType, Size: l.Size, Digest: l.Digest}
	var t *integrity.Table
	err := store.StreamBlob(ctx, l.Digest, func(body io.Reader, _ int64) error {
		rep.start(StepIndex, b) // again on a retry: the count restarts
		tb := integrity.NewBuilder(l.Digest.Algorithm(), integrity.PieceSizeFor(l.Size))
		// One byte more than the layer is enough to tell it is too long.
		if _, err := io.Copy(io.MultiWriter(tb, advanceWriter{rep}), io.LimitReader(body, l.Size+1)); err != nil {
			return err
		}
		t = tb.Table()
		return nil
	})
	rep.finish(err)
	if err != nil {
		return nil, fmt.Errorf("stream layer %s (%s, %d bytes): %w", l.Digest, path, l.Size, err)
	}
	if t.Blob != l.Digest || t.Size != l.Size {
		return nil, &LayerMismatchError{Layer: l.Digest, Path: path, Size: l.Size, Got: t.Blob, GotSize: t.Size}
	}
	return t, nil
}

// LayerMismatchError: the bytes the registry sent for a layer do not match
// its descriptor. No table is published for such an image.
type LayerMismatchError struct {
	Layer   digest.Digest
	Path    string // in the tree
	Size    int64
	Got     digest.Digest
	GotSize int64
}

func (e *LayerMismatchError) Error() string {
	return fmt.Sprintf("layer %s (%s, %d bytes): the registry sent %d bytes that hash to %s: nothing published",
		e.Layer, e.Path, e.Size, e.GotSize, e.Got)
}

// Unwrap: the registry's answer contradicts the request.
func (e *LayerMismatchError) Unwrap() error { return blobstore.ErrBadResponse }

// advanceWriter reports bytes as they pass.
type advanceWriter struct{ rep *reporter }

func (w advanceWriter) Write(p []byte) (int, error) {
	w.rep.advance(int64(len(p)))
	return len(p), nil
}
