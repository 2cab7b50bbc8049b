package blobstore

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// TestSharedReferrers: two lookups of one manifest's referrers, for two
// artifact types, make one request, and each gets its own type.
func TestSharedReferrers(t *testing.T) {
	var lists atomic.Int64
	host := startGGCR(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/referrers/") {
				lists.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	subject := pushSubject(t, host, "disk")
	tables := pushTablesReferrer(t, host, subject)
	other := pushOtherReferrer(t, host, subject)
	ctx := context.Background()
	lists.Store(0) // pushing a referrer asks too
	s := NewSharedReferrers(ctx, openReferrersStore(t, host))

	got, err := s.Referrers(ctx, subject.Digest, image.ArtifactTypeChunkTables)
	if err != nil || !slices.Equal(digests(got), []digest.Digest{tables.Digest}) {
		t.Fatalf("chunk tables: %v, %v", digests(got), err)
	}
	all, err := s.Referrers(ctx, subject.Digest, "")
	want := []digest.Digest{tables.Digest, other.Digest}
	slices.Sort(want)
	if err != nil || !slices.Equal(digests(all), want) {
		t.Fatalf("all: %v, %v", digests(all), err)
	}
	if got, err := s.Referrers(ctx, subject.Digest, image.ArtifactTypeChunkTables); err != nil || len(got) != 1 {
		t.Fatalf("again: %v, %v (a filter must not change the shared listing)", got, err)
	}
	if n := lists.Load(); n != 1 {
		t.Fatalf("%d referrers requests, want 1", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Referrers(cancelled, pushSubject(t, host, "x").Digest, ""); err == nil {
		t.Fatal("a cancelled caller got an answer")
	}
}
