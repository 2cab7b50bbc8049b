package blobstore

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestFailedRanges(t *testing.T) {
	var f failedRanges
	a, b := digest.FromString("a"), digest.FromString("b")
	if _, ok := f.recent(a, 0, 10); ok {
		t.Fatal("empty memo reports a failure")
	}
	f.remember(a, 100, 100) // [100, 200)
	for _, tc := range []struct {
		d    digest.Digest
		off  int64
		n    int
		want bool
	}{
		{a, 100, 100, true}, {a, 150, 1, true}, {a, 0, 101, true}, {a, 199, 10, true},
		{a, 0, 100, false}, {a, 200, 10, false}, {b, 100, 100, false},
	} {
		if _, ok := f.recent(tc.d, tc.off, tc.n); ok != tc.want {
			t.Errorf("recent(%d, %d) = %v, want %v", tc.off, tc.n, ok, tc.want)
		}
	}
	f.forget(a, 180, 50)
	if _, ok := f.recent(a, 100, 100); ok {
		t.Fatal("an overlapping success did not forget the failure")
	}
	for i := range maxFailedRanges + 10 {
		f.remember(a, int64(i)*10, 10)
	}
	if n := len(f.blobs[a]); n != maxFailedRanges {
		t.Fatalf("%d ranges remembered, want at most %d", n, maxFailedRanges)
	}
	if _, ok := f.recent(a, 0, 10); ok {
		t.Fatal("the oldest range was not dropped")
	}
	for i := range f.blobs[a] {
		f.blobs[a][i].at = time.Now().Add(-recentFailure)
	}
	if _, ok := f.recent(a, 0, 1<<20); ok || len(f.blobs) != 0 {
		t.Fatalf("expired failures kept: %v", f.blobs)
	}
}
