package layout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// The files at the top of a layout.
const (
	layoutFile = ocispec.ImageLayoutFile // "oci-layout"
	indexFile  = "index.json"
	blobsDir   = ocispec.ImageBlobsDir // "blobs"
)

// maxLayoutFile bounds the oci-layout file: one small JSON object.
const maxLayoutFile = 4096

// Options configure Open. The zero value is the documented default.
type Options struct {
	// Logger gets debug lines (documents skipped by the referrers scan);
	// nil is silent.
	Logger *slog.Logger
}

// Layout is one image of an OCI image layout, opened for reading. It is
// safe for concurrent use; Close releases the blob files it holds open.
type Layout struct {
	dir   string // absolute
	root  *os.Root
	index ocispec.Index
	top   ocispec.Descriptor // the image the reference names
	log   *slog.Logger

	mu     sync.Mutex // guards files and closed
	files  map[digest.Digest]*blobFile
	closed bool

	scanOnce sync.Once // the referrers scan (referrers.go)
	scan     *scan
}

// Open opens the layout directory of ref, reads its oci-layout file and
// index.json, and finds the image ref names. Errors name the file they
// are about and wrap ErrNotFound, ErrInvalid or ErrAmbiguous.
func Open(ctx context.Context, ref Ref, opts Options) (*Layout, error) {
	abs, err := filepath.Abs(ref.Dir)
	if err != nil {
		return nil, fmt.Errorf("layout directory %s: %w", ref.Dir, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errorf(ErrNotFound, "no layout directory %s", abs)
	case err != nil:
		return nil, fmt.Errorf("layout directory %s: %w", abs, err)
	case !st.IsDir():
		return nil, errorf(ErrInvalid, "layout directory %s: not a directory", abs)
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open layout directory %s: %w", abs, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Layout{dir: abs, root: root, log: log, files: map[digest.Digest]*blobFile{}}
	if err := l.readLayoutFile(); err != nil {
		root.Close()
		return nil, err
	}
	if err := l.readIndex(); err != nil {
		root.Close()
		return nil, err
	}
	if l.top, err = l.selectImage(ctx, ref); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Dir is the layout directory, absolute.
func (l *Layout) Dir() string { return l.dir }

// Top is the descriptor of the image the reference names.
func (l *Layout) Top() ocispec.Descriptor { return l.top }

// Close closes the blob files held open. Reads after Close fail.
func (l *Layout) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.f.Close())
	}
	l.files = nil
	errs = append(errs, l.root.Close())
	return errors.Join(errs...)
}

// path is the file name of rel (slash-separated, within the layout), for
// messages.
func (l *Layout) path(rel string) string { return filepath.Join(l.dir, filepath.FromSlash(rel)) }

// readLayoutFile checks the oci-layout file: a JSON object whose
// imageLayoutVersion is 1.x.
func (l *Layout) readLayoutFile() error {
	raw, err := l.readFile(layoutFile, maxLayoutFile)
	if errors.Is(err, ErrNotFound) {
		return errorf(ErrInvalid, "%s: no %s file, which every OCI image layout has", l.dir, layoutFile)
	}
	if err != nil {
		return err
	}
	var lf ocispec.ImageLayout
	if err := json.Unmarshal(raw, &lf); err != nil {
		return errorf(ErrInvalid, "%s is not an oci-layout file: %v", l.path(layoutFile), err)
	}
	if v := lf.Version; v == "" || !strings.HasPrefix(v, "1.") {
		return errorf(ErrInvalid, "%s: imageLayoutVersion %q is not supported (want 1.x, such as %q)", l.path(layoutFile), v, ocispec.ImageLayoutVersion)
	}
	return nil
}

// readIndex reads index.json: an OCI image index of well-formed
// descriptors.
func (l *Layout) readIndex() error {
	raw, err := l.readFile(indexFile, image.MaxDocumentSize)
	if errors.Is(err, ErrNotFound) {
		return errorf(ErrInvalid, "%s: no %s file, which every OCI image layout has", l.dir, indexFile)
	}
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return errorf(ErrInvalid, "%s is not a valid image index: %s", l.path(indexFile), fmt.Sprintf(format, args...))
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return bad("%v", err)
	}
	if idx.SchemaVersion != 2 {
		return bad("schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && !strings.EqualFold(idx.MediaType, ocispec.MediaTypeImageIndex) {
		return bad("mediaType %q, want %q", idx.MediaType, ocispec.MediaTypeImageIndex)
	}
	if idx.Manifests == nil {
		return bad("no manifests list")
	}
	if len(idx.Manifests) > image.MaxManifests {
		return bad("%d entries, more than the limit of %d", len(idx.Manifests), image.MaxManifests)
	}
	for i, d := range idx.Manifests {
		if err := d.Digest.Validate(); err != nil {
			return bad("entry %d: digest %q: %v", i, d.Digest, err)
		}
		if d.Size < 0 || d.Size > image.MaxDocumentSize {
			return bad("entry %d (%s): size %d is not that of a manifest or index (at most %d bytes)", i, d.Digest, d.Size, int64(image.MaxDocumentSize))
		}
	}
	l.index = idx
	return nil
}

// readFile reads the regular file rel of at most limit bytes.
func (l *Layout) readFile(rel string, limit int64) ([]byte, error) {
	f, size, err := l.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than the limit of %d", l.path(rel), ErrTooLarge, size, limit)
	}
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", l.path(rel), err)
	}
	return buf, nil
}

// open opens the regular file rel beneath the layout directory and
// returns it with its size. A file that is not there is ErrNotFound; one
// that is not a regular file (a directory, a FIFO, a device), or a path
// that leaves the layout directory, is ErrInvalid.
func (l *Layout) open(rel string) (*os.File, int64, error) {
	p := l.path(rel)
	// Stat first: opening a FIFO would block.
	st, err := l.root.Stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, errorf(ErrNotFound, "%s: no such file", p)
	case err != nil:
		return nil, 0, errorf(ErrInvalid, "%s: %v", p, err)
	case !st.Mode().IsRegular():
		return nil, 0, errorf(ErrInvalid, "%s: not a regular file (%s)", p, st.Mode().Type())
	}
	f, err := l.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, errorf(ErrInvalid, "open %s: %v", p, err)
	}
	st, err = f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errorf(ErrInvalid, "%s: not a regular file (%s)", p, st.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}
