package fs

import "testing"

func TestReadahead(t *testing.T) {
	const k = 128 << 10
	r := newReadahead(32 << 20)
	steps := []struct {
		off, n       int64
		wantFrom     int64
		wantN        int64
		name         string
	}{
		{0, k, 0, 0, "first read: no read-ahead"},
		{k, k, 2 * k, 1 << 20, "sequential: one MiB ahead"},
		{2 * k, k, 3*k + 1<<20 - k, 2<<20 - (1<<20 - k), "doubles, from where the last prefetch ended"},
		{100 << 20, 4096, 0, 0, "seek: reset"},
		{100<<20 + 4096, 4096, 100<<20 + 8192, 1 << 20, "sequential again: one MiB"},
	}
	for _, s := range steps {
		from, n := r.advance(s.off, s.n)
		if from != s.wantFrom || n != s.wantN {
			t.Fatalf("%s: advance(%d, %d) = %d+%d, want %d+%d", s.name, s.off, s.n, from, n, s.wantFrom, s.wantN)
		}
	}
	// The window never exceeds max.
	r = newReadahead(4 << 20)
	var off int64
	for i := 0; i < 100; i++ {
		from, n := r.advance(off, k)
		if n > 0 && from+n > off+k+4<<20 {
			t.Fatalf("prefetch to %d, more than 4 MiB beyond %d", from+n, off+k)
		}
		off += k
	}
	var nilR *readahead
	if _, n := nilR.advance(0, k); n != 0 {
		t.Fatal("a disabled read-ahead prefetched")
	}
}
