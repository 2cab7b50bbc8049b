package layout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// blobFile is a blob file held open for reads of byte ranges.
type blobFile struct {
	f    *os.File
	path string // for messages
	size int64  // when opened
}

// blobRel is the file of blob d within the layout: blobs/<alg>/<hex>. A
// digest that does not validate (an unknown algorithm, anything but hex
// of the right length) names no file: it could name one outside blobs/.
func blobRel(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", errorf(ErrInvalid, "blob %q: %v", d, err)
	}
	return blobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded(), nil
}

// blob returns blob d's file, opened once and held until Close.
func (l *Layout) blob(d digest.Digest) (*blobFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("blob %s: the layout %s is closed", d, l.dir)
	}
	if b := l.files[d]; b != nil {
		return b, nil
	}
	rel, err := blobRel(d)
	if err != nil {
		return nil, err
	}
	f, size, err := l.open(rel)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	b := &blobFile{f: f, path: l.path(rel), size: size}
	l.files[d] = b
	return b, nil
}

// ReadParts fills the consecutive buffers parts with the bytes of blob d
// from off on, reading its file, and calls done(i) once part i is filled,
// in order. A file that ends first is a *ShortBlobError. It implements
// lazy.PartReader.
func (l *Layout) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	b, err := l.blob(d)
	if err != nil {
		return err
	}
	for i, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := b.f.ReadAt(p, off)
		if n < len(p) {
			if err == nil || err == io.EOF {
				size := b.size
				if st, serr := b.f.Stat(); serr == nil {
					size = st.Size()
				}
				return &ShortBlobError{Path: b.path, Off: off + int64(n), Size: size}
			}
			return fmt.Errorf("read %s at %d: %w", b.path, off+int64(n), err)
		}
		off += int64(len(p))
		done(i)
	}
	return nil
}

// StreamBlob hands fn the whole of blob d's file and its size. It
// implements lazy.BlobStreamer (a layout never ignores ranges, so lazy
// does not call it).
func (l *Layout) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	b, err := l.blob(d)
	if err != nil {
		return err
	}
	st, err := b.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", b.path, err)
	}
	return fn(io.NewSectionReader(b.f, 0, st.Size()), st.Size())
}

// BlobUpTo reads the whole of blob d, which must be at most limit bytes
// and exactly its descriptor's size. The caller checks its digest.
func (l *Layout) BlobUpTo(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size > limit {
		return nil, fmt.Errorf("blob %s: %w: %d bytes is too large to read whole (the limit is %d)", d.Digest, ErrTooLarge, d.Size, limit)
	}
	rel, err := blobRel(d.Digest)
	if err != nil {
		return nil, err
	}
	f, size, err := l.open(rel)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer f.Close()
	if size != d.Size {
		return nil, errorf(ErrInvalid, "blob file %s is %d bytes, its descriptor says %d", l.path(rel), size, d.Size)
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", l.path(rel), err)
	}
	return buf, nil
}

// Blob reads a whole small blob (a config). It implements image.Fetcher.
func (l *Layout) Blob(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	return l.BlobUpTo(ctx, d, image.MaxDocumentSize)
}

// Manifest reads the manifest or index d and returns it with its media
// type: the descriptor's, else the document's own mediaType field. It
// implements image.Fetcher.
func (l *Layout) Manifest(ctx context.Context, d ocispec.Descriptor) ([]byte, string, error) {
	raw, err := l.BlobUpTo(ctx, d, image.MaxDocumentSize)
	if err != nil {
		return nil, "", err
	}
	mt := d.MediaType
	if mt == "" {
		mt = ownMediaType(raw)
	}
	return raw, mt, nil
}

// ownMediaType is the mediaType field of a document, "" when it has none
// (or is not JSON).
func ownMediaType(raw []byte) string {
	var v struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.MediaType
}

// CheckFile checks that blob d's file is there, a regular file beneath the
// layout, of size bytes: a layer's, before it is served, so that a mount
// fails at once, naming the file, rather than with EIO on a read.
func (l *Layout) CheckFile(d digest.Digest, size int64) error {
	b, err := l.blob(d)
	if err != nil {
		return err
	}
	if b.size != size {
		return errorf(ErrInvalid, "blob file %s is %d bytes, its descriptor says %d", b.path, b.size, size)
	}
	return nil
}
