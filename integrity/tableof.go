package integrity

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
)

// TableOf reads all of r, the content of blob d, and returns the table of
// its pieces of pieceSize bytes once the whole of it has matched d; a
// blob that does not match is a *DigestMismatchError, and yields no table.
// It is how a blob with no published table gets one, for bytes read again
// later to be checked piece by piece: the table is only as good as the
// blob it was made from, which is why it is made from a blob that matched.
//
// pieceSize may be any positive size (a chunk size that is not a power of
// two): the table is kept in memory, and Marshal of one whose piece size is
// not a power of two from MinPieceSize to MaxPieceSize gives bytes that
// Parse refuses. It stops when ctx ends.
func TableOf(ctx context.Context, d digest.Digest, pieceSize int64, r io.Reader) (*Table, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("check blob %q: %w", d, err)
	}
	if pieceSize <= 0 {
		return nil, fmt.Errorf("check blob %s: piece size %d: must be positive", d, pieceSize)
	}
	b := newBuilder(d.Algorithm(), pieceSize)
	if _, err := io.Copy(b, ctxReader{ctx, r}); err != nil {
		return nil, fmt.Errorf("check blob %s: %w", d, err)
	}
	t := b.Table()
	if t.Blob != d {
		return nil, &DigestMismatchError{Digest: d, Got: t.Blob}
	}
	return t, nil
}
