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
// every later read of the blob fails, unless the source can fetch it
// elsewhere (a mirror sent it): then it is fetched again when read. A blob checked by pieces is first
// checked chunk by chunk: a chunk damaged on disk is removed (and fetched
// again when read), and only a blob whose every piece matches its table
// but not its digest (a table that lies) fails.
func (f *Fetcher) verify(d digest.Digest, size int64) {
	if !f.opts.Integrity.Whole(d) {
		return
	}
	chunks := numChunks(size, f.opts.ChunkSize)
	_, _, _ = f.group.Do("verify/"+d.String(), func() (any, error) {
		if f.badErr(d) != nil || !f.opts.Disk.NeedsVerify(d, chunks) {
			return nil, nil // condemned or verified meanwhile, by a verification that just ended
		}
		err := f.opts.Disk.Verify(d, chunks, func(r io.Reader) error {
			return f.opts.Integrity.CheckBlob(f.ctx, d, r)
		})
		var mm *integrity.DigestMismatchError
		bad, unread := 0, 0
		if errors.As(err, &mm) && f.opts.Integrity.PieceSize(d) > 0 {
			bad, unread = f.removeBadChunks(d, size)
		}
		switch {
		case err == nil:
			f.log.Debug("blob verified", "digest", d)
		case bad > 0:
			f.log.Warn("blob complete in the disk cache failed its check; its damaged chunks are removed, fetched again when read", "digest", d, "chunks", bad)
		case unread > 0:
			f.log.Debug("blob failed its check, and chunks went missing while they were checked again; nothing can be said", "digest", d)
		case errors.As(err, &mm) && f.opts.Integrity.PieceSize(d) == 0 && f.distrust(d, 0, -1):
			// The bytes came from a mirror, which is passed over for it now:
			// they are dropped, and fetched again from the next host when
			// read.
			f.opts.Disk.Drop(d)
			f.cache.RemoveBlob(d)
			f.opts.Observer.VerifyFailed(d)
			if f.opts.OnCorrupt != nil {
				f.opts.OnCorrupt(d)
			}
			f.log.Warn("blob failed verification; dropped, and fetched again from the next host when read", "digest", d, "got", mm.Got)
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
			if ps := f.opts.Integrity.PieceSize(d); ps > 0 && ps < size { // a table, not the blob's own digest
				f.log.Error("blob failed verification though every piece matches its table: the table is wrong; its reads now fail", "digest", d, "got", mm.Got)
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

// removeBadChunks checks every chunk of blob d (of size bytes) on disk by
// its pieces, removes those that fail, and says how many it removed and
// how many it could not read (gone meanwhile, or the Fetcher closing).
func (f *Fetcher) removeBadChunks(d digest.Digest, size int64) (bad, unread int) {
	var buf []byte
	for i := range numChunks(size, f.opts.ChunkSize) {
		if f.ctx.Err() != nil {
			unread++
			continue
		}
		k := cache.Key{Digest: d, Index: i}
		_, n := chunkRange(i, size, f.opts.ChunkSize)
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		if ok, err := f.opts.Disk.ReadAt(k, buf[:n], 0); err != nil || !ok {
			unread++
			continue
		}
		if err := f.checkChunk(k, size, buf[:n]); err != nil {
			f.corruptOnDisk(k, err)
			bad++
		}
	}
	return bad, unread
}
