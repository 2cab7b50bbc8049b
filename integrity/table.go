package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A chunk table, version 1, is a binary blob; integers are big-endian:
//
//	offset  size  field
//	0       8     magic "OSIFSCT1"
//	8       4     piece size in bytes: a power of two, 4 KiB to 64 MiB
//	12      8     blob size in bytes
//	20      1     length L of the blob digest (1 to 255)
//	21      L     the blob's digest as in its descriptor ("sha256:<hex>")
//	21+L    32*N  sha256 of each piece in blob order, N = ceil(size/piece size);
//	              the last piece ends at the blob's end
//
// Nothing follows the last digest. A 1 GiB layer with 64 KiB pieces has a
// table of 524,380 bytes.
const (
	magic        = "OSIFSCT1"
	headerLen    = 21
	MinPieceSize = 4 << 10
	MaxPieceSize = 64 << 20
	// MaxPieces bounds a table (32 MiB of digests): a larger blob needs
	// larger pieces (PieceSizeFor).
	MaxPieces = 1 << 20
	// MaxTableSize is the largest table Parse accepts.
	MaxTableSize = headerLen + 255 + 32*MaxPieces
)

// DefaultPieceSize is the piece size of the tables osimagefs builds for
// blobs up to 64 GiB: a random 4 KiB read needs no more than one piece, and
// a piece is one chunk of the default chunk size (lazy.DefaultChunkSize),
// so the default mount checks every chunk by its table.
const DefaultPieceSize = 64 << 10

// defaultMaxPieces is the most pieces of the tables osimagefs builds (32
// MiB of digests for a 64 GiB blob); larger blobs get larger pieces.
const defaultMaxPieces = MaxPieces

// ErrTable: a chunk table cannot be parsed.
var ErrTable = errors.New("malformed chunk table")

// Table is a parsed chunk table. It is read-only once made.
type Table struct {
	Blob      digest.Digest // the blob it covers
	Size      int64         // the blob's size
	PieceSize int64
	digests   []byte // 32 per piece
}

// PieceSizeFor is the piece size osimagefs uses for a blob of size
// bytes: DefaultPieceSize, doubled until the table has at most MaxPieces
// pieces.
func PieceSizeFor(size int64) int64 {
	ps := int64(DefaultPieceSize)
	// size/ps rounded up, without size+ps-1 (which overflows near MaxInt64).
	for size/ps+min(size%ps, 1) > defaultMaxPieces && ps < MaxPieceSize {
		ps *= 2
	}
	return ps
}

// Pieces is the number of pieces.
func (t *Table) Pieces() int64 { return int64(len(t.digests) / sha256.Size) }

// PieceRange is the offset and length of piece i.
func (t *Table) PieceRange(i int64) (off, n int64) {
	off = i * t.PieceSize
	return off, min(t.PieceSize, t.Size-off)
}

// Marshal encodes the table in the format above.
func (t *Table) Marshal() []byte {
	ds := t.Blob.String()
	out := make([]byte, 0, headerLen+len(ds)+len(t.digests))
	out = append(out, magic...)
	out = binary.BigEndian.AppendUint32(out, uint32(t.PieceSize))
	out = binary.BigEndian.AppendUint64(out, uint64(t.Size))
	out = append(out, byte(len(ds)))
	out = append(out, ds...)
	return append(out, t.digests...)
}

// Digest is the digest of the encoded table.
func (t *Table) Digest() digest.Digest { return digest.FromBytes(t.Marshal()) }

// Parse decodes a table, refusing anything that is not exactly one well
// formed table.
func Parse(b []byte) (*Table, error) {
	if len(b) > MaxTableSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTable, len(b), MaxTableSize)
	}
	if len(b) < headerLen || string(b[:8]) != magic {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrTable, magic)
	}
	ps := int64(binary.BigEndian.Uint32(b[8:12]))
	if ps < MinPieceSize || ps > MaxPieceSize || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("%w: piece size %d is not a power of two from %d to %d", ErrTable, ps, MinPieceSize, MaxPieceSize)
	}
	size := binary.BigEndian.Uint64(b[12:20])
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: blob size %d is out of range", ErrTable, size)
	}
	l := int(b[20])
	if l == 0 || len(b) < headerLen+l {
		return nil, fmt.Errorf("%w: the blob digest is missing", ErrTable)
	}
	d, err := digest.Parse(string(b[headerLen : headerLen+l]))
	if err != nil {
		return nil, fmt.Errorf("%w: blob digest %q: %w", ErrTable, printable(b[headerLen:headerLen+l]), err)
	}
	n := (int64(size) + ps - 1) / ps
	if n > MaxPieces {
		return nil, fmt.Errorf("%w: %d pieces, more than the limit of %d", ErrTable, n, MaxPieces)
	}
	rest := b[headerLen+l:]
	if int64(len(rest)) != 32*n {
		return nil, fmt.Errorf("%w: %d bytes of piece digests, want %d for %d pieces of %d bytes", ErrTable, len(rest), 32*n, n, ps)
	}
	return &Table{Blob: d, Size: int64(size), PieceSize: ps, digests: bytes.Clone(rest)}, nil
}

// printable quotes what may be garbage, briefly.
func printable(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return fmt.Sprintf("%q", b)
}

// Covers checks that the table is for the layer desc: same digest, same
// size. A table that is not is never used.
func (t *Table) Covers(desc ocispec.Descriptor) error {
	if t.Blob != desc.Digest {
		return fmt.Errorf("the table is for blob %s, not %s", t.Blob, desc.Digest)
	}
	if t.Size != desc.Size {
		return fmt.Errorf("the table says blob %s is %d bytes, its descriptor says %d", desc.Digest, t.Size, desc.Size)
	}
	return nil
}

// PieceError: bytes of a blob do not hash to the table's digest of their
// piece.
type PieceError struct {
	Blob  digest.Digest
	Piece int64
	Off   int64 // the piece's first byte
	Got   string
	Want  string
}

func (e *PieceError) Error() string {
	return fmt.Sprintf("piece %d (bytes %d+) of blob %s hashes to sha256:%s, its table says sha256:%s", e.Piece, e.Off, e.Blob, e.Got, e.Want)
}

// Check checks b, the bytes of the blob at off. b must start on a piece
// boundary and end on one or at the blob's end.
func (t *Table) Check(off int64, b []byte) error {
	n := int64(len(b))
	// off > t.Size-n, not off+n > t.Size: the sum may overflow.
	if off < 0 || off%t.PieceSize != 0 || off > t.Size || n > t.Size-off || (off+n != t.Size && n%t.PieceSize != 0) {
		return fmt.Errorf("check %d bytes at %d of blob %s: not whole pieces of %d bytes", len(b), off, t.Blob, t.PieceSize)
	}
	for i := off / t.PieceSize; len(b) > 0; i++ {
		n := min(int64(len(b)), t.PieceSize)
		got := sha256.Sum256(b[:n])
		want := t.digests[32*i : 32*i+32]
		if !bytes.Equal(got[:], want) {
			return &PieceError{Blob: t.Blob, Piece: i, Off: i * t.PieceSize, Got: hex.EncodeToString(got[:]), Want: hex.EncodeToString(want)}
		}
		b = b[n:]
	}
	return nil
}
