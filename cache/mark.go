package cache

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrIncomplete: a blob's chunks are not all on disk (any more).
var ErrIncomplete = errors.New("blob not complete in the cache")

// NeedsVerify reports whether all n chunks of blob dg are on disk and it
// has not been marked verified yet (by any process).
func (d *Disk) NeedsVerify(dg digest.Digest, n int64) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	if err != nil || b == nil || b.chunks != n || b.verified() {
		return false
	}
	return b.complete()
}

// Verified reports whether blob dg is complete on disk and marked
// verified.
func (d *Disk) Verified(dg digest.Digest) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	return err == nil && b != nil && b.verified()
}

// Verify hands check the bytes of blob dg, whose n chunks are all on
// disk, and marks the blob verified, for every process, when check
// accepts them and no chunk changed meanwhile. check's error is returned
// as it is; the caller decides what a mismatch means (Drop). ErrIncomplete
// means a chunk went missing, or was evicted while being read, so nothing
// can be said.
func (d *Disk) Verify(dg digest.Digest, n int64, check func(r io.Reader) error) error {
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
	mtime, err := b.mtime()
	if err != nil {
		return fmt.Errorf("verify %s: %w", dg, err)
	}
	if err := check(io.NewSectionReader(b.data, 0, b.size)); err != nil {
		if !b.unchanged(before) {
			return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
		}
		return err
	}
	if after, err := b.mtime(); err != nil || after != mtime || !b.unchanged(before) {
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	// The mark goes first and stays only if no chunk changed: an eviction
	// changes its slot before it clears the mark, so either this check
	// sees the change or that clearing comes after this mark. The mtime
	// of the bytes checked goes with it (pin.go).
	b.verifiedMtime().Store(mtime)
	b.setVerified(true)
	if !b.unchanged(before) {
		b.setVerified(false)
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	return nil
}

// complete reports whether every chunk is present. It looks from the last
// chunk back and allocates nothing: it runs after every chunk written, and
// a blob filled from the start misses its last chunks until the end.
func (b *blobFile) complete() bool {
	for i := b.chunks - 1; i >= 0; i-- {
		if !present(b.state(i).Load()) {
			return false
		}
	}
	return true
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

// Drop evicts every chunk of blob dg, for a blob known to be corrupt, and
// clears its verified mark.
func (d *Disk) Drop(dg digest.Digest) {
	if !d.enter() {
		return
	}
	defer d.life.RUnlock()
	if b, err := d.blob(dg, 0, false); err == nil && b != nil {
		b.setVerified(false)
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

// Remove evicts chunk k, for a chunk whose bytes failed a check: it is
// fetched again by whoever reads it next. Its blob's verified mark goes.
func (d *Disk) Remove(k Key) {
	if !d.enter() {
		return
	}
	defer d.life.RUnlock()
	b, err := d.blob(k.Digest, 0, false)
	if err != nil || b == nil {
		return
	}
	// The mark goes even when the chunk is held by a fetcher: the blob is
	// no longer what was verified, and must not be handed to the kernel.
	b.setVerified(false)
	if k.Index >= 0 && k.Index < b.chunks {
		d.evictChunk(b, k.Index)
	}
}
