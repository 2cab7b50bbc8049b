package lazy

import "testing"

func TestSpan(t *testing.T) {
	const cs = 1 << 20
	tests := []struct {
		name        string
		off, n      int64
		first, last int64
	}{
		{"first byte", 0, 1, 0, 0},
		{"whole first chunk", 0, cs, 0, 0},
		{"one past a chunk", 0, cs + 1, 0, 1},
		{"last byte of chunk 0", cs - 1, 1, 0, 0},
		{"crossing a boundary", cs - 1, 2, 0, 1},
		{"4 KiB in chunk 390", 100000 * 4096, 4096, 390, 390},
		{"three chunks", cs / 2, 2 * cs, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, l := span(tc.off, tc.n, cs)
			if f != tc.first || l != tc.last {
				t.Fatalf("span(%d, %d) = %d..%d, want %d..%d", tc.off, tc.n, f, l, tc.first, tc.last)
			}
		})
	}
}

func TestChunkRange(t *testing.T) {
	tests := []struct {
		name            string
		i, size, cs     int64
		wantOff, wantLn int64
	}{
		{"full chunk", 0, 10, 4, 0, 4},
		{"short last chunk", 2, 10, 4, 8, 2},
		{"exact multiple", 2, 12, 4, 8, 4},
		{"beyond the end", 3, 12, 4, 12, 0},
		{"empty blob", 0, 0, 4, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off, n := chunkRange(tc.i, tc.size, tc.cs)
			if off != tc.wantOff || n != tc.wantLn {
				t.Fatalf("chunkRange(%d, %d, %d) = %d+%d, want %d+%d", tc.i, tc.size, tc.cs, off, n, tc.wantOff, tc.wantLn)
			}
		})
	}
	if got := numChunks(12, 4); got != 3 {
		t.Fatalf("numChunks(12, 4) = %d, want 3", got)
	}
	if got := numChunks(13, 4); got != 4 {
		t.Fatalf("numChunks(13, 4) = %d, want 4", got)
	}
}

// FuzzChunkMath checks that the chunks span names cover exactly the bytes
// asked for, and that chunkRange tiles the blob without gaps or overlap.
func FuzzChunkMath(f *testing.F) {
	f.Add(int64(0), int64(1), int64(4096), int64(10000))
	f.Add(int64(4095), int64(2), int64(4096), int64(8192))
	f.Add(int64(1<<40), int64(1<<20), int64(1<<20), int64(1<<41))
	f.Fuzz(func(t *testing.T, off, n, cs, size int64) {
		if cs <= 0 || cs > 64<<20 || n <= 0 || n > 1<<30 || off < 0 || size <= 0 || off >= size || off+n > size || size > 1<<50 {
			return
		}
		first, last := span(off, n, cs)
		fo, fl := chunkRange(first, size, cs)
		lo, ll := chunkRange(last, size, cs)
		if fo > off || off >= fo+fl {
			t.Fatalf("first chunk %d (%d+%d) does not hold offset %d", first, fo, fl, off)
		}
		end := off + n - 1
		if lo > end || end >= lo+ll {
			t.Fatalf("last chunk %d (%d+%d) does not hold byte %d", last, lo, ll, end)
		}
		if last >= numChunks(size, cs) {
			t.Fatalf("last chunk %d beyond the %d chunks of a %d-byte blob", last, numChunks(size, cs), size)
		}
		if first > 0 {
			po, pl := chunkRange(first-1, size, cs)
			if po+pl != fo {
				t.Fatalf("chunk %d ends at %d, chunk %d starts at %d", first-1, po+pl, first, fo)
			}
		}
	})
}
