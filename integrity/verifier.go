package integrity

import (
	"context"
	_ "crypto/sha512" // blob digests may be sha512
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Mode is how a mount checks the bytes it serves (--verify).
type Mode string

const (
	// Auto checks pieces wherever a table exists (or the blob is one
	// chunk at most), and the whole blob otherwise.
	Auto Mode = "auto"
	// Pieces checks every piece and refuses to mount a layer it cannot.
	Pieces Mode = "pieces"
	// Whole checks a blob against its digest once it is complete in the
	// disk cache: what reads got before that was not checked.
	Whole Mode = "blob"
	// Off checks nothing.
	Off Mode = "off"
)

// ParseMode parses a --verify value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Pieces, Whole, Off:
		return m, nil
	}
	return "", fmt.Errorf("%q: want auto, pieces, blob or off", s)
}

// Found is a chunk table found for an image, and where.
type Found struct {
	Table *Table
	From  string // "manifest sha256:..." or "referrer sha256:..."
}

// Decision is how one blob is checked, for the log.
type Decision struct {
	Blob      digest.Digest
	Size      int64
	Mode      Mode  // Pieces, Whole or Off
	PieceSize int64 // with Pieces
	From      string
	Why       string // why a blob got Whole in Auto mode
}

// Verifier is a mount's checking policy: for each blob, whether its pieces
// are checked as they arrive (and against which table), and whether it is
// checked whole once complete on disk. Safe for concurrent use; read-only
// once made.
type Verifier struct {
	whole bool // check blobs whole once on disk (all modes but Off)
	blobs map[digest.Digest]pieceCheck
}

// pieceCheck is how the pieces of one blob are checked: by its table, or,
// for a blob no larger than one chunk, by its own digest as one piece.
type pieceCheck struct {
	table *Table
	size  int64 // of a blob that is one piece
}

// WholeBlobs checks every blob whole once it is complete on disk and no
// piece on its way: the default of a lazy.Fetcher.
func WholeBlobs() *Verifier { return &Verifier{whole: true} }

// NewVerifier decides, for each layer, how it is checked in mode, reading
// with chunks of chunkSize bytes, given the tables found. In Pieces mode a
// layer whose pieces cannot be checked is an error naming it and the fix.
func NewVerifier(mode Mode, chunkSize int64, layers []ocispec.Descriptor, found []Found) (*Verifier, []Decision, error) {
	v := &Verifier{whole: mode != Off, blobs: map[digest.Digest]pieceCheck{}}
	tables := map[digest.Digest]Found{}
	for _, f := range found {
		if _, ok := tables[f.Table.Blob]; !ok {
			tables[f.Table.Blob] = f
		}
	}
	var out []Decision
	seen := map[digest.Digest]bool{}
	for _, l := range layers {
		if seen[l.Digest] {
			continue
		}
		seen[l.Digest] = true
		d := Decision{Blob: l.Digest, Size: l.Size, Mode: mode}
		switch mode {
		case Off, Whole:
		default:
			// Pieces only once a way to check them is found: d.Mode
			// starts as the mode asked for, Pieces included.
			d.Mode = Whole
			f, ok := tables[l.Digest]
			switch {
			case ok && f.Table.Size == l.Size && chunkSize%f.Table.PieceSize == 0:
				v.blobs[l.Digest] = pieceCheck{table: f.Table}
				d.Mode, d.PieceSize, d.From = Pieces, f.Table.PieceSize, f.From
			case l.Size <= chunkSize && l.Digest.Validate() == nil:
				v.blobs[l.Digest] = pieceCheck{size: l.Size}
				d.Mode, d.PieceSize, d.From = Pieces, l.Size, "its digest (one chunk)"
			case ok && f.Table.Size == l.Size:
				d.Why = fmt.Sprintf("its table's %d-byte pieces do not divide the %d-byte chunks (--chunk-size)", f.Table.PieceSize, chunkSize)
			default:
				d.Why = "no chunk table"
			}
			if d.Mode != Pieces && mode == Pieces {
				return nil, nil, fmt.Errorf("--verify pieces: layer %s (%d bytes) cannot be checked by pieces: %s; publish tables with osimagefs index, or mount with --verify auto", l.Digest, l.Size, d.Why)
			}
		}
		out = append(out, d)
	}
	return v, out, nil
}

// PieceSize is the size of blob d's pieces as they are checked, 0 when
// they are not.
func (v *Verifier) PieceSize(d digest.Digest) int64 {
	c, ok := v.blobs[d]
	switch {
	case !ok:
		return 0
	case c.table != nil:
		return c.table.PieceSize
	}
	return c.size
}

// CheckPieces checks b, the bytes of blob d at off, which start on a piece
// boundary and end on one or at the blob's end. A piece that does not
// match is a *PieceError (a *DigestMismatchError for a one-piece blob).
func (v *Verifier) CheckPieces(d digest.Digest, off int64, b []byte) error {
	c, ok := v.blobs[d]
	switch {
	case !ok:
		return fmt.Errorf("check blob %s: no pieces to check it by", d)
	case c.table != nil:
		return c.table.Check(off, b)
	case off != 0 || int64(len(b)) != c.size:
		return fmt.Errorf("check %d bytes at %d of blob %s: the blob is one piece of %d bytes", len(b), off, d, c.size)
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return &DigestMismatchError{Digest: d, Got: got}
	}
	return nil
}

// Whole reports whether blob d is checked whole once complete on disk.
func (v *Verifier) Whole(digest.Digest) bool { return v.whole }

// CheckBlob hashes r, all of blob d (CheckBlob).
func (v *Verifier) CheckBlob(ctx context.Context, d digest.Digest, r io.Reader) error {
	return CheckBlob(ctx, d, r)
}
