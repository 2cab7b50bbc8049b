package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrIncomplete: a blob's chunks are not all on disk (any more).
var ErrIncomplete = errors.New("blob not complete in the cache")

// DigestMismatchError: the cached content of a blob does not hash to its
// digest. The chunks have been deleted.
type DigestMismatchError struct {
	Digest digest.Digest
	Got    digest.Digest
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("blob %s: content hashes to %s; cached chunks dropped", e.Digest, e.Got)
}

// NeedsVerify reports whether all n chunks of blob dg are on disk and it
// has not been verified yet (by any process).
func (d *Disk) NeedsVerify(dg digest.Digest, n int64) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	if err != nil || b == nil || b.chunks != n || b.verified() {
		return false
	}
	_, ok := b.states()
	return ok
}

// Verified reports whether blob dg is complete on disk and matched its
// digest.
func (d *Disk) Verified(dg digest.Digest) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	return err == nil && b != nil && b.verified()
}

// Verify hashes blob dg, whose n chunks are all on disk. On a match it
// marks the blob verified, for every process; on a mismatch it evicts
// the blob's chunks and returns a *DigestMismatchError. ErrIncomplete
// means a chunk went missing, or was evicted while being hashed, so
// nothing can be said.
func (d *Disk) Verify(ctx context.Context, dg digest.Digest, n int64) error {
	if !d.enter() {
		return fmt.Errorf("verify %s: %w", dg, errClosed)
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	if err != nil {
		return fmt.Errorf("verify %s: %w", dg, err)
	}
	if b == nil || b.chunks != n {
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	before, ok := b.states()
	if !ok {
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	h := dg.Algorithm().Hash()
	if _, err := io.Copy(h, ctxReader{ctx, io.NewSectionReader(b.data, 0, b.size)}); err != nil {
		return fmt.Errorf("verify %s: %w", dg, err)
	}
	if !b.unchanged(before) {
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	if got := digest.NewDigest(dg.Algorithm(), h); got != dg {
		d.drop(b)
		return &DigestMismatchError{Digest: dg, Got: got}
	}
	// The mark goes first and stays only if no chunk changed: an eviction
	// changes its slot before it clears the mark, so either this check
	// sees the change or that clearing comes after this mark.
	b.setVerified(true)
	if !b.unchanged(before) {
		b.setVerified(false)
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	return nil
}

// states returns the state of every chunk, and whether all are present.
func (b *blobFile) states() ([]uint64, bool) {
	s := make([]uint64, b.chunks)
	for i := range b.chunks {
		s[i] = b.state(i).Load()
		if !present(s[i]) {
			return nil, false
		}
	}
	return s, true
}

// unchanged reports whether no chunk's state moved from before.
func (b *blobFile) unchanged(before []uint64) bool {
	for i := range b.chunks {
		if b.state(i).Load() != before[i] {
			return false
		}
	}
	return true
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Drop evicts every chunk of blob dg, for a blob known to be corrupt.
func (d *Disk) Drop(dg digest.Digest) {
	if !d.enter() {
		return
	}
	defer d.life.RUnlock()
	if b, err := d.blob(dg, 0, false); err == nil && b != nil {
		d.drop(b)
	}
}

// drop evicts every chunk of b. A chunk being written is waited for, up
// to 100 ms (a write takes about a millisecond), so that it goes too.
func (d *Disk) drop(b *blobFile) {
	for i := range b.chunks {
		for try := 0; try < 50; try++ {
			if present(b.state(i).Load()) {
				if d.evictChunk(b, i) > 0 {
					break
				}
			} else if ok, err := d.lock(b, i); err != nil || ok {
				d.unlock(b, i) // nobody writing it
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}
