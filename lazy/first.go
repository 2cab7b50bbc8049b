package lazy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/integrity"
)

// Options.CheckFirst: a blob that Integrity checks whole, and by no
// pieces, is otherwise checked only once it is complete in the disk cache
// (never without one), so the reads before that get bytes nobody checked.
// With CheckFirst the blob is read through once from the source and hashed
// before the first of its bytes is served; the table of its pieces (one
// per chunk) made on the way then checks every chunk fetched later, as a
// published chunk table would. For a source whose blobs are files on this
// host this costs a pass over the file (about 4 s per GiB here, at the
// first read of the layer); for a registry it would download the blob
// whole, which is why it is an option.

// maxFirstPieces bounds the table CheckFirst keeps per blob: 32 bytes per
// chunk, 128 MiB at most (4 TiB with 1 MiB chunks, 256 GiB with the
// default 64 KiB).
const maxFirstPieces = 1 << 22

// checkedFirst is the Fetcher's Integrity under CheckFirst: the policy it
// was given, and the tables made by hashing blobs that policy checks only
// whole. It is safe for concurrent use; a table, once stored, never
// changes, and no chunk of its blob is fetched before it is stored.
type checkedFirst struct {
	Integrity
	tables sync.Map // digest.Digest -> *integrity.Table
}

// table returns the table made for blob d, if any.
func (c *checkedFirst) table(d digest.Digest) (*integrity.Table, bool) {
	t, ok := c.tables.Load(d)
	if !ok {
		return nil, false
	}
	return t.(*integrity.Table), true
}

// PieceSize is the given policy's, else that of the table made for d.
func (c *checkedFirst) PieceSize(d digest.Digest) int64 {
	if ps := c.Integrity.PieceSize(d); ps > 0 {
		return ps
	}
	if t, ok := c.table(d); ok {
		return t.PieceSize
	}
	return 0
}

// CheckPieces checks by the given policy's pieces, else by the table made
// for d.
func (c *checkedFirst) CheckPieces(d digest.Digest, off int64, b []byte) error {
	if c.Integrity.PieceSize(d) == 0 {
		if t, ok := c.table(d); ok {
			return t.Check(off, b)
		}
	}
	return c.Integrity.CheckPieces(d, off, b)
}

// needed reports whether blob d must be hashed before it is served: the
// policy checks it whole, by no pieces, and it has no table yet.
func (c *checkedFirst) needed(d digest.Digest) bool {
	if !c.Integrity.Whole(d) || c.Integrity.PieceSize(d) > 0 {
		return false
	}
	_, ok := c.tables.Load(d)
	return !ok
}

// checkFirst returns once blob d (of size bytes) may be served under
// CheckFirst: at once when it need not be hashed first (or has been), else
// once it has been hashed through the source, by one pass for all callers.
// The pass runs on the Fetcher's context; a caller stops waiting when ctx
// ends. A blob that does not match its digest fails now and from then on.
func (f *Fetcher) checkFirst(ctx context.Context, d digest.Digest, size int64) error {
	if f.first == nil || size == 0 || !f.first.needed(d) {
		return nil
	}
	if err := f.badErr(d); err != nil {
		return err
	}
	if vc, ok := f.opts.Disk.(verifiedCache); ok && vc.Verified(d) {
		return nil // complete on disk and checked there: every read is served from it, checked by its digest
	}
	ch := f.group.DoChan("first/"+d.String(), func() (any, error) { return nil, f.hashFirst(d, size) })
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to be checked against its digest before any of it is served: %w", d, ctx.Err())
	}
}

// hashFirst reads blob d through the source and stores the table of its
// chunks if it matches d. A mismatch, or a blob shorter than its
// descriptor, condemns the blob; other errors (the Fetcher closing, a
// read that failed) leave the next read to try again.
func (f *Fetcher) hashFirst(d digest.Digest, size int64) error {
	if !f.first.needed(d) {
		return nil // done by a pass that just ended
	}
	if err := f.badErr(d); err != nil {
		return err
	}
	cs := f.opts.ChunkSize
	if n := numChunks(size, cs); n > maxFirstPieces {
		return fmt.Errorf("check %s before serving it: %d chunks of %d bytes, more than the %d this check keeps digests of (a larger --chunk-size, or a chunk table)", d, n, cs, maxFirstPieces)
	}
	start := time.Now()
	r := bufio.NewReaderSize(&sourceReader{f: f, d: d, size: size}, int(min(f.opts.MaxRequest, max(size, 4096))))
	t, err := integrity.TableOf(f.ctx, d, cs, r)
	var mm *integrity.DigestMismatchError
	switch {
	case err == nil:
		f.first.tables.Store(d, t)
		f.log.Debug("blob checked against its digest before serving it", "digest", d, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
		return nil
	case errors.As(err, &mm), errors.Is(err, ErrBlobSize):
		err = fmt.Errorf("%w: %w", ErrCorruptBlob, err)
		f.bad.Store(d, err)
		f.cache.RemoveBlob(d)
		f.opts.Observer.VerifyFailed(d)
		// No OnCorrupt: nothing of the blob was served, so no copy of it
		// is held elsewhere; and a reader waits for this pass from inside
		// a FUSE read, whose pages dropping the kernel's cache would wait
		// for in turn.
		f.log.Error("blob failed its check before any of it was served; its reads fail", "digest", d, "host", f.opts.Host, "err", err)
		return err
	}
	return fmt.Errorf("check %s against its digest before serving it: %w", d, err)
}

// sourceReader reads blob d from the source in order, one range request
// per Read (bufio makes them large), each bounded by FetchTimeout. The end
// of the blob is its descriptor's size; a source that says it ends sooner
// gives ErrBlobSize.
type sourceReader struct {
	f    *Fetcher
	d    digest.Digest
	size int64
	off  int64
}

func (r *sourceReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	ctx, cancel := context.WithTimeout(r.f.ctx, r.f.opts.FetchTimeout)
	defer cancel()
	err := r.f.src.ReadParts(ctx, r.d, [][]byte{p}, r.off, func(int) {})
	if short := shortBlob(nil); errors.As(err, &short) {
		return 0, fmt.Errorf("%w (its descriptor says %d bytes): %w", ErrBlobSize, r.size, err)
	}
	if err != nil {
		return 0, fmt.Errorf("read %d bytes at %d: %w", len(p), r.off, err)
	}
	r.off += int64(len(p))
	return len(p), nil
}
