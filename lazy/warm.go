package lazy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
)

// ErrNotVerified: a blob was brought into the disk cache but could not be
// verified there (its chunks were evicted meanwhile, or hashing failed).
var ErrNotVerified = errors.New("blob not verified in the disk cache")

// diskSettle is how long Warm waits for the disk queue to write the last
// chunks of a blob before it writes the missing ones itself.
const diskSettle = 5 * time.Second

// verifiedCache is a disk cache that tells whether a blob is complete and
// matched its digest; cache.Disk is one.
type verifiedCache interface {
	Verified(d digest.Digest) bool
}

// Warm brings the whole blob into the disk cache, fetching only the chunks
// not cached yet, in runs of up to MaxRequest bytes with up to Parallel
// runs at once (the Fetcher's request slots bound them over all blobs),
// and returns once every chunk is on disk and the blob has been verified
// against its digest, unless Integrity checks nothing (an empty blob has
// nothing to cache). A blob that
// does not match fails with ErrCorruptBlob (its chunks are dropped). When
// ctx ends it returns at once; fetches in flight go on until Close, which
// writes the chunks that arrived to disk.
func (b *Blob) Warm(ctx context.Context) error {
	disk := b.f.opts.Disk
	if disk == nil {
		return fmt.Errorf("warm %s: no disk cache", b.digest)
	}
	if err := b.f.badErr(b.digest); err != nil {
		return fmt.Errorf("warm %s: %w", b.digest, err)
	}
	if b.size == 0 {
		return nil // no chunk: a read never fetches anything
	}
	// A second round repairs a blob whose check removed damaged chunks
	// (a blob checked by pieces): they are fetched again, and checked.
	var err error
	for round := 0; round < 2; round++ {
		if err = b.fill(ctx, true, false); err != nil {
			return fmt.Errorf("warm %s: %w", b.digest, err)
		}
		if err = b.persist(ctx); err != nil {
			return fmt.Errorf("warm %s: %w", b.digest, err)
		}
		if err = b.settleVerify(ctx); !errors.Is(err, ErrNotVerified) || b.f.opts.Integrity.PieceSize(b.digest) == 0 {
			return err
		}
	}
	return err
}

// persist returns once every chunk of the blob is on disk. Fetched chunks
// reach the disk through the disk queue, or through another process that
// holds them in the shared cache; those not there after diskSettle (a
// failed write, or an eviction) are written here, from memory or fetched
// again, and are waited for once more. A failure to write is returned.
func (b *Blob) persist(ctx context.Context) error {
	disk := b.f.opts.Disk
	total := numChunks(b.size, b.f.opts.ChunkSize)
	missing := func() []int64 {
		var out []int64
		for i := int64(0); i < total; i++ {
			if !disk.Has(cache.Key{Digest: b.digest, Index: i}) {
				out = append(out, i)
			}
		}
		return out
	}
	// condemned: the blob failed verification a moment ago. The
	// verification that did it may still be dropping its chunks: it is
	// joined, so that none are left when Warm returns.
	condemned := func() error {
		err := b.f.badErr(b.digest)
		if err != nil {
			b.f.verify(b.digest, b.size)
		}
		return err
	}
	settle := func() ([]int64, error) {
		deadline := time.Now().Add(diskSettle)
		m := missing()
		for len(m) > 0 && time.Now().Before(deadline) {
			if err := condemned(); err != nil {
				return nil, err // complete on disk a moment ago, verified, and dropped
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
			m = missing()
		}
		return m, condemned()
	}
	m, err := settle()
	if err != nil || len(m) == 0 {
		return err
	}
	for _, i := range m {
		k := cache.Key{Digest: b.digest, Index: i}
		c, err := b.f.chunk(ctx, b.digest, b.size, i)
		if err != nil {
			return err
		}
		if err := disk.Add(k, b.size, c); err != nil {
			return fmt.Errorf("write %s to the disk cache: %w", k, err)
		}
	}
	if m, err = settle(); err == nil && len(m) > 0 {
		err = fmt.Errorf("%d chunks, the first %d, are not in the disk cache %s after writing them (evicted at once: is the cache large enough?)", len(m), m[0], diskSettle)
	}
	return err
}

// settleVerify waits for the verification of the blob, complete on disk,
// running it if nobody has, and reports its outcome.
func (b *Blob) settleVerify(ctx context.Context) error {
	if !b.f.opts.Integrity.Whole(b.digest) {
		return nil // not checked whole (--verify off)
	}
	chunks := numChunks(b.size, b.f.opts.ChunkSize)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if b.f.opts.Disk.NeedsVerify(b.digest, chunks) {
			b.f.verify(b.digest, b.size) // joins a verification in flight
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := b.f.badErr(b.digest); err != nil {
		return fmt.Errorf("warm %s: %w", b.digest, err)
	}
	if vc, ok := b.f.opts.Disk.(verifiedCache); ok && !vc.Verified(b.digest) {
		if b.f.opts.Disk.NeedsVerify(b.digest, chunks) {
			return fmt.Errorf("warm %s: %w (hashing its chunks failed; see the log)", b.digest, ErrNotVerified)
		}
		return fmt.Errorf("warm %s: %w: chunks were evicted meanwhile (is the cache large enough?)", b.digest, ErrNotVerified)
	}
	return nil
}
