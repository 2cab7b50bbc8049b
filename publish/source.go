package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/integrity"
)

// copyBufferSize is the read size used to hash files.
const copyBufferSize = 1 << 20

// checkFiles makes sure every file can be opened and is a regular file,
// before anything is hashed or sent.
func checkFiles(files []roleFile) error {
	for _, rf := range files {
		f, err := os.Open(rf.path)
		if err != nil {
			return &FileError{Role: rf.role, Path: rf.path, Err: err}
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return &FileError{Role: rf.role, Path: rf.path, Err: err}
		}
		if !fi.Mode().IsRegular() {
			return &FileError{Role: rf.role, Path: rf.path, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
		}
	}
	return nil
}

// hashFile reads the file once, streaming, and returns its blob with digest
// and size and, with tables, the chunk table of a file larger than one
// piece (nil otherwise): the same read yields both.
func hashFile(ctx context.Context, rf roleFile, mediaType string, tables bool, rep *reporter) (b Blob, t *integrity.Table, err error) {
	f, err := os.Open(rf.path)
	if err != nil {
		return Blob{}, nil, &FileError{Role: rf.role, Path: rf.path, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Blob{}, nil, &FileError{Role: rf.role, Path: rf.path, Err: err}
	}
	b = Blob{Role: rf.role, Path: rf.path, MediaType: mediaType, Size: fi.Size()}
	rep.start(StepHash, b)
	defer func() { rep.finish(err) }()

	var (
		w       io.Writer
		builder *integrity.Builder
		d       digest.Digester
	)
	if tables {
		// The piece size follows the size stat saw; should the file
		// grow while it is read, the table is still exact, in more pieces.
		builder = integrity.NewBuilder(digest.Canonical, integrity.PieceSizeFor(fi.Size()))
		w = builder
	} else {
		d = digest.Canonical.Digester()
		w = d.Hash()
	}
	n, err := io.CopyBuffer(w, &ctxReader{ctx: ctx, r: f, rep: rep}, make([]byte, copyBufferSize))
	if err != nil {
		return Blob{}, nil, fmt.Errorf("hash %s file %s: %w", rf.role, rf.path, err)
	}
	b.Size = n
	if builder == nil {
		b.Digest = d.Digest()
		return b, nil, nil
	}
	t = builder.Table()
	b.Digest = t.Blob
	if t.Size <= t.PieceSize {
		return b, nil, nil // one piece: its digest checks it
	}
	return b, t, nil
}

// ctxReader stops reading when ctx is done and reports progress.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	rep *reporter
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.rep.advance(int64(n))
	return n, err
}

// errChanged: a file changed size between hashing and uploading.
var errChanged = errors.New("file changed since it was hashed")
