package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
// has not been verified yet.
func (d *Disk) NeedsVerify(dg digest.Digest, n int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.verified[dg] && d.perBlob[dg] >= n
}

// Verified reports whether blob dg is complete on disk and matched its digest.
func (d *Disk) Verified(dg digest.Digest) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.verified[dg]
}

// Verify hashes the n chunks of blob dg in order. On a match it records the
// blob as verified (persistently); on a mismatch it deletes the blob's
// chunks and returns a *DigestMismatchError. ErrIncomplete means a chunk
// went missing meanwhile (evicted), so nothing can be said.
func (d *Disk) Verify(ctx context.Context, dg digest.Digest, n int64) error {
	if err := dg.Validate(); err != nil {
		return fmt.Errorf("verify %s: %w", dg, err)
	}
	h := dg.Algorithm().Hash()
	for i := int64(0); i < n; i++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify %s: %w", dg, err)
		}
		k := Key{Digest: dg, Index: i}
		if err := hashFile(h, filepath.Join(d.root, d.path(k))); err != nil {
			return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
		}
	}
	if got := digest.NewDigest(dg.Algorithm(), h); got != dg {
		d.dropBlob(dg, n)
		return &DigestMismatchError{Digest: dg, Got: got}
	}
	// The marker goes first and the mark only if every chunk is still
	// indexed: a chunk evicted meanwhile must not leave a blob marked
	// verified, in memory or on disk, that is not complete. (Eviction
	// removes the marker of a marked blob; before the mark, it is ours to
	// remove.)
	marker := filepath.Join(d.root, filepath.Dir(d.path(Key{Digest: dg})), "verified")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return fmt.Errorf("record %s as verified: %w", dg, err)
	}
	d.mu.Lock()
	complete := d.perBlob[dg] >= n
	if complete {
		d.verified[dg] = true
	}
	d.mu.Unlock()
	if !complete {
		_ = os.Remove(marker)
		return fmt.Errorf("verify %s: %w", dg, ErrIncomplete)
	}
	return nil
}

// dropBlob deletes every chunk of blob dg.
func (d *Disk) dropBlob(dg digest.Digest, n int64) {
	for i := int64(0); i < n; i++ {
		d.remove(d.path(Key{Digest: dg, Index: i}), 0)
	}
}

// hashFile feeds the content of file p to h.
func hashFile(h io.Writer, p string) error {
	f, err := openChunk(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}
