package lazy

import (
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/integrity"
)

// ErrCorruptBlob: a blob's content did not match its digest when it became
// complete in the disk cache. Its reads fail from then on.
var ErrCorruptBlob = errors.New("blob content does not match its digest")

// verify checks a blob that has just become complete in the disk cache,
// once even if several fills complete it together, if Integrity checks it
// whole. On a mismatch the cached chunks are dropped (by the disk cache,
// from memory and, through OnCorrupt, from the kernel's page cache) and
// every later read of the blob fails.
func (f *Fetcher) verify(d digest.Digest, chunks int64) {
	if !f.opts.Integrity.Whole(d) {
		return
	}
	_, _, _ = f.group.Do("verify/"+d.String(), func() (any, error) {
		if !f.opts.Disk.NeedsVerify(d, chunks) {
			return nil, nil // verified meanwhile, by a verification that just ended
		}
		err := f.opts.Disk.Verify(d, chunks, func(r io.Reader) error {
			return f.opts.Integrity.CheckBlob(f.ctx, d, r)
		})
		var mm *integrity.DigestMismatchError
		switch {
		case err == nil:
			f.log.Debug("blob verified", "digest", d)
		case errors.As(err, &mm):
			f.bad.Store(d, fmt.Errorf("%w: %w", ErrCorruptBlob, err))
			// Chunks being written while it was hashed are dropped too;
			// none are written from now on (writeDisk).
			f.opts.Disk.Drop(d)
			f.cache.RemoveBlob(d)
			f.opts.Observer.VerifyFailed(d)
			if f.opts.OnCorrupt != nil {
				f.opts.OnCorrupt(d)
			}
			if f.opts.Integrity.PieceSize(d) > 0 {
				f.log.Error("blob failed verification though its pieces matched their table: the table is wrong; its reads now fail", "digest", d, "got", mm.Got)
			} else {
				f.log.Error("blob failed verification; its reads now fail", "digest", d, "got", mm.Got)
			}
		case f.ctx.Err() != nil:
			f.log.Debug("blob verification stopped: the fetcher is closing", "digest", d)
		case errors.Is(err, cache.ErrIncomplete):
			f.log.Debug("blob verification skipped: chunks evicted meanwhile", "digest", d)
		default:
			f.log.Warn("blob verification failed to run", "digest", d, "err", err)
		}
		return nil, nil
	})
}

// badErr returns the error of a blob that failed verification, or nil.
func (f *Fetcher) badErr(d digest.Digest) error {
	if v, ok := f.bad.Load(d); ok {
		return v.(error)
	}
	return nil
}
