package lazy

import (
	"context"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
)

// Integrity says how the bytes of each blob are checked before they land
// anywhere; *integrity.Verifier is one.
type Integrity interface {
	// PieceSize is the size of blob d's pieces as they are checked, 0
	// when they are not. Chunk boundaries fall on piece boundaries.
	PieceSize(d digest.Digest) int64
	// CheckPieces checks b, the bytes of blob d at off: whole pieces (the
	// last may end at the blob's end).
	CheckPieces(d digest.Digest, off int64, b []byte) error
	// Whole reports whether blob d is checked whole once complete on disk.
	Whole(d digest.Digest) bool
	// CheckBlob checks all of blob d, read from r.
	CheckBlob(ctx context.Context, d digest.Digest, r io.Reader) error
}

// ErrCorruptPiece: bytes fetched twice did not match their piece's digest
// either time (or bytes of a chunk once, for a chunk fetched in a stream).
var ErrCorruptPiece = errors.New("piece does not match its digest")

// checkChunk checks chunk k (b, of a blob of size bytes) by its pieces, if
// its blob has any.
func (f *Fetcher) checkChunk(k cache.Key, size int64, b []byte) error {
	if f.opts.Integrity.PieceSize(k.Digest) == 0 {
		return nil
	}
	off, _ := chunkRange(k.Index, size, f.opts.ChunkSize)
	return f.opts.Integrity.CheckPieces(k.Digest, off, b)
}

// pieceSpan widens the bytes [lo, hi) of blob d (of size bytes) to the
// pieces holding them; ps is the piece size.
func pieceSpan(lo, hi, size, ps int64) (int64, int64) {
	return lo / ps * ps, min(size, (hi+ps-1)/ps*ps)
}

// readDiskChecked fills dst, the bytes of chunk k at off in the chunk,
// from the disk cache, checking the pieces that hold them. It reports
// false for a miss; a chunk whose bytes fail the check is removed from the
// disk cache (and fetched again by the caller), once logged.
func (f *Fetcher) readDiskChecked(k cache.Key, size int64, dst []byte, off int64) bool {
	ps := f.opts.Integrity.PieceSize(k.Digest)
	if ps == 0 {
		ok, err := f.opts.Disk.ReadAt(k, dst, off)
		return err == nil && ok
	}
	cOff := k.Index * f.opts.ChunkSize
	lo, hi := pieceSpan(cOff+off, cOff+off+int64(len(dst)), size, ps)
	buf := dst
	if lo != cOff+off || hi != cOff+off+int64(len(dst)) {
		buf = make([]byte, hi-lo)
	}
	if ok, err := f.opts.Disk.ReadAt(k, buf, lo-cOff); err != nil || !ok {
		return false
	}
	if err := f.opts.Integrity.CheckPieces(k.Digest, lo, buf); err != nil {
		f.corruptOnDisk(k, err)
		return false
	}
	copy(dst, buf[cOff+off-lo:])
	return true
}

// corruptOnDisk removes chunk k, which failed its check when read from
// the disk cache: a damaged cache, never served.
func (f *Fetcher) corruptOnDisk(k cache.Key, err error) {
	f.opts.Disk.Remove(k)
	f.opts.Observer.VerifyFailed(k.Digest)
	f.log.Warn("chunk in the disk cache failed its check; removed, fetching it again", "chunk", k.String(), "err", err)
}
