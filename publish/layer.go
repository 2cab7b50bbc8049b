package publish

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// fileLayer is a v1.Layer over a file whose digest and size are already
// known. Its bytes are the file as it is (layers are not compressed), read
// afresh by every Compressed call, so an upload retry starts over.
type fileLayer struct {
	blob  Blob
	hash  v1.Hash
	rep   *reporter
	opens atomic.Int32 // Compressed calls: 0 after an upload means the registry had the blob
}

func newFileLayer(b Blob, rep *reporter) (*fileLayer, error) {
	h, err := v1.NewHash(b.Digest.String())
	if err != nil {
		return nil, err
	}
	return &fileLayer{blob: b, hash: h, rep: rep}, nil
}

func (l *fileLayer) Digest() (v1.Hash, error) { return l.hash, nil }
func (l *fileLayer) DiffID() (v1.Hash, error) { return l.hash, nil }
func (l *fileLayer) Size() (int64, error)     { return l.blob.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.blob.MediaType), nil
}
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return l.Compressed()
}

// Compressed opens the file. The reader sends exactly Size bytes and fails
// if the file has become shorter since it was hashed.
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.blob.Path)
	if err != nil {
		return nil, &FileError{Role: l.blob.Role, Path: l.blob.Path, Err: err}
	}
	l.opens.Add(1)
	l.rep.start(StepUpload, l.blob)
	return &fileReader{f: f, left: l.blob.Size, blob: l.blob, rep: l.rep}, nil
}

// uploaded reports whether the layer's bytes were ever read for upload.
func (l *fileLayer) uploaded() bool { return l.opens.Load() > 0 }

// fileReader streams one upload of a file. It has only Read and Close, so
// net/http treats it as a plain stream of Content-Length bytes.
type fileReader struct {
	f    *os.File
	left int64
	blob Blob
	rep  *reporter
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	r.rep.advance(int64(n))
	if err == io.EOF && r.left > 0 {
		return n, fmt.Errorf("%s file %s: %w (%d bytes missing)", r.blob.Role, r.blob.Path, errChanged, r.left)
	}
	if err == nil && r.left == 0 {
		err = io.EOF
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

// bytesLayer is a small in-memory blob (the config, the cmdline).
type bytesLayer struct {
	data      []byte
	hash      v1.Hash
	mediaType string
	opens     atomic.Int32
}

func newBytesLayer(data []byte, mediaType string) *bytesLayer {
	h, _ := v1.NewHash(digest.FromBytes(data).String()) // a canonical sha256 always parses
	return &bytesLayer{data: data, hash: h, mediaType: mediaType}
}

func (l *bytesLayer) Digest() (v1.Hash, error)            { return l.hash, nil }
func (l *bytesLayer) DiffID() (v1.Hash, error)            { return l.hash, nil }
func (l *bytesLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *bytesLayer) MediaType() (types.MediaType, error) { return types.MediaType(l.mediaType), nil }
func (l *bytesLayer) Compressed() (io.ReadCloser, error) {
	l.opens.Add(1)
	return io.NopCloser(bytes.NewReader(l.data)), nil
}

func (l *bytesLayer) uploaded() bool                       { return l.opens.Load() > 0 }
func (l *bytesLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
