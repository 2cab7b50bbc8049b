package integrity

import (
	"bytes"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
)

// FuzzParseTable: Parse never panics, refuses with ErrTable, and what it
// accepts re-encodes to exactly the bytes it was given.
func FuzzParseTable(f *testing.F) {
	for _, size := range []int{0, 1, testPiece, 3*testPiece + 1} {
		f.Add(build(randomBytes(uint64(size), size), testPiece, 1000).Marshal())
	}
	good := build(randomBytes(1, 2*testPiece), testPiece, 1000).Marshal()
	f.Add(good[:len(good)-1])
	f.Add(good[:headerLen])
	f.Add(header(DefaultPieceSize, 1<<20, digest.FromString("x").String()))
	f.Add(header(MaxPieceSize, 0, "sha512:"+string(bytes.Repeat([]byte("ab"), 64))))
	f.Add(header(4096, 4096, "sha256:"))
	f.Add([]byte(magic))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrTable) {
				t.Fatalf("Parse refused with %v, not ErrTable", err)
			}
			return
		}
		if out := tb.Marshal(); !bytes.Equal(out, b) {
			t.Fatalf("Parse then Marshal changed the bytes:\n in %x\nout %x", b, out)
		}
		if tb.Pieces() != (tb.Size+tb.PieceSize-1)/tb.PieceSize {
			t.Fatalf("%d pieces for %d bytes in pieces of %d", tb.Pieces(), tb.Size, tb.PieceSize)
		}
		// Checking zeros against it never panics either.
		if tb.Pieces() > 0 {
			off, n := tb.PieceRange(tb.Pieces() - 1)
			if n > 1<<20 {
				return
			}
			_ = tb.Check(off, make([]byte, n))
		}
	})
}
