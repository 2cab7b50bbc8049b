package blobstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/integrity"
)

// SharedReferrers is a Store whose referrers listing is fetched once per
// manifest, whatever artifact type is asked for, and shared: the chunk
// tables (integrity.Find) and the boot profile of one mount cost one
// listing between them. Each listing runs on the context given to
// NewSharedReferrers, so a caller that gives up does not fail the others;
// a caller stops waiting when its own context ends. A failed listing is
// remembered like a successful one (Store.Referrers retries already).
type SharedReferrers struct {
	*Store
	ctx context.Context

	mu    sync.Mutex // guards calls
	calls map[digest.Digest]*referrersCall
}

// A SharedReferrers is where integrity.Find looks for chunk tables.
var _ integrity.Source = (*SharedReferrers)(nil)

// referrersCall is one listing, in flight or done.
type referrersCall struct {
	done  chan struct{}
	descs []ocispec.Descriptor
	err   error
}

// NewSharedReferrers shares s's referrers listings; ctx bounds them.
func NewSharedReferrers(ctx context.Context, s *Store) *SharedReferrers {
	return &SharedReferrers{Store: s, ctx: ctx, calls: map[digest.Digest]*referrersCall{}}
}

// Referrers is Store.Referrers, from the one listing of subject.
func (s *SharedReferrers) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("list referrers of %q: %w", subject, err)
	}
	s.mu.Lock()
	c, ok := s.calls[subject]
	if !ok {
		c = &referrersCall{done: make(chan struct{})}
		s.calls[subject] = c
		go func() {
			defer close(c.done)
			c.descs, c.err = s.Store.Referrers(s.ctx, subject, "")
		}()
	}
	s.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("list referrers of %s: %w", subject, ctx.Err())
	}
	if c.err != nil {
		return nil, c.err
	}
	return filterReferrers(slices.Clone(c.descs), artifactType), nil
}
