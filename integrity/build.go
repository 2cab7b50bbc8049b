package integrity

import (
	"crypto/sha256"
	"fmt"
	"hash"

	"github.com/opencontainers/go-digest"
)

// Builder makes the chunk table of a blob written to it in order, and the
// blob's digest along the way, so that a blob streamed once yields both.
type Builder struct {
	pieceSize int64
	blob      digest.Digester
	piece     hash.Hash
	inPiece   int64 // bytes of the current piece written
	size      int64
	digests   []byte
}

// NewBuilder starts a table with pieces of pieceSize bytes (a power of two
// from MinPieceSize to MaxPieceSize) for a blob whose digest uses alg.
// Any other piece size is a programming error and panics: a piece of 0
// bytes would never end.
func NewBuilder(alg digest.Algorithm, pieceSize int64) *Builder {
	if pieceSize < MinPieceSize || pieceSize > MaxPieceSize || pieceSize&(pieceSize-1) != 0 {
		panic(fmt.Sprintf("integrity.NewBuilder: piece size %d is not a power of two from %d to %d", pieceSize, MinPieceSize, MaxPieceSize))
	}
	return newBuilder(alg, pieceSize)
}

// newBuilder is NewBuilder for any positive piece size: for tables kept in
// memory (TableOf), never encoded.
func newBuilder(alg digest.Algorithm, pieceSize int64) *Builder {
	return &Builder{pieceSize: pieceSize, blob: alg.Digester(), piece: sha256.New()}
}

// Write adds the next bytes of the blob. It never fails.
func (b *Builder) Write(p []byte) (int, error) {
	b.blob.Hash().Write(p)
	b.size += int64(len(p))
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), b.pieceSize-b.inPiece)
		b.piece.Write(p[:k])
		b.inPiece += k
		p = p[k:]
		if b.inPiece == b.pieceSize {
			b.endPiece()
		}
	}
	return n, nil
}

func (b *Builder) endPiece() {
	b.digests = b.piece.Sum(b.digests)
	b.piece.Reset()
	b.inPiece = 0
}

// Table ends the blob and returns its table; Blob is the digest of what
// was written, for the caller to compare with the digest it expects.
func (b *Builder) Table() *Table {
	if b.inPiece > 0 {
		b.endPiece()
	}
	return &Table{Blob: b.blob.Digest(), Size: b.size, PieceSize: b.pieceSize, digests: b.digests}
}
