package fs

import "testing"

func TestReadahead(t *testing.T) {
	const k = 128 << 10
	r := newReadahead(32 << 20)
	steps := []struct {
		name           string
		off, n         int64
		wantFrom, want int64
	}{
		{"first read: no read-ahead", 0, k, 0, 0},
		{"sequential, less than 1 MiB read: nothing ahead", k, k, 0, 0},
		{"sequential, 1 MiB read: 1 MiB ahead", 2 * k, 6 * k, 1 << 20, 1 << 20},
		{"more than three quarters of the window left: nothing new", 1 << 20, k, 0, 0},
		{"a quarter used: topped up to what was read", 9 * k, k, 2 << 20, 4 * k},
		{"seek: reset", 100 << 20, 4096, 0, 0},
		{"small forward jump: still the stream, not yet 1 MiB", 100<<20 + 8192, 4096, 0, 0},
		{"far jump: reset", 200 << 20, 4096, 0, 0},
	}
	for _, s := range steps {
		from, n := r.advance(s.off, s.n)
		if from != s.wantFrom || n != s.want {
			t.Fatalf("%s: advance(%d, %d) = %d+%d, want %d+%d", s.name, s.off, s.n, from, n, s.wantFrom, s.want)
		}
	}
}

// TestReadaheadBounds streams a file and checks the window grows to max
// but never fetches further ahead than max, nor more than the stream read.
func TestReadaheadBounds(t *testing.T) {
	const k = 128 << 10
	const maxWin = 8 << 20
	r := newReadahead(maxWin)
	var off, fetchedTo, maxLead int64
	for i := 0; i < 1000; i++ {
		from, n := r.advance(off, k)
		off += k
		if n == 0 {
			continue
		}
		if from < fetchedTo {
			t.Fatalf("prefetch from %d overlaps what was already prefetched (to %d)", from, fetchedTo)
		}
		fetchedTo = from + n
		maxLead = max(maxLead, fetchedTo-off)
		if fetchedTo > off+maxWin {
			t.Fatalf("prefetched to %d, more than max ahead of the reader at %d", fetchedTo, off)
		}
		if fetchedTo > 2*off {
			t.Fatalf("prefetched to %d after reading %d bytes", fetchedTo, off)
		}
	}
	if maxLead != maxWin {
		t.Fatalf("window did not reach max: the most prefetched ahead was %d, want %d", maxLead, maxWin)
	}
	if lead := fetchedTo - off; lead < maxWin*3/4 {
		t.Fatalf("at the end only %d bytes were prefetched ahead of the reader, want at least three quarters of %d", lead, maxWin)
	}
	var disabled *readahead
	if _, n := disabled.advance(0, k); n != 0 {
		t.Fatal("a disabled read-ahead prefetched")
	}
	if _, n := newReadahead(0).advance(0, k); n != 0 {
		t.Fatal("read-ahead 0 prefetched")
	}
}

// TestReadaheadOutOfOrder: the kernel's read-ahead sends several reads at
// once and they arrive in any order; that is still one stream.
func TestReadaheadOutOfOrder(t *testing.T) {
	const m = 1 << 20
	r := newReadahead(32 << 20)
	r.advance(0, m)
	r.advance(m, m)
	r.advance(3*m, m)
	r.advance(2*m, m)
	// The read at 2 MiB came late: it does not reset the stream, and the
	// gap it fills is not counted twice.
	if r.streak != 3*m || r.next != 4*m {
		t.Fatalf("after reads 0,1,3,2 MiB: streak %d next %d, want %d and %d", r.streak, r.next, 3*m, 4*m)
	}
}
