package integrity

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
)

func TestTableOf(t *testing.T) {
	data := randomBytes(7, 100_000)
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		name      string
		pieceSize int64
	}{
		{"power of two", 4096},
		{"not a power of two", 10_000},
		{"one piece larger than the blob", 1 << 20},
		{"one byte", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := TableOf(context.Background(), d, tc.pieceSize, iotest.HalfReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			want := naiveTable(data, tc.pieceSize)
			if tab.Blob != d || tab.Size != int64(len(data)) || !bytes.Equal(tab.digests, want.digests) {
				t.Fatalf("table differs from the naive one: %d pieces, want %d", tab.Pieces(), want.Pieces())
			}
			if err := tab.Check(0, data); err != nil {
				t.Fatalf("the blob fails its own table: %v", err)
			}
			bad := bytes.Clone(data)
			bad[len(bad)-1] ^= 1
			var pe *PieceError
			if err := tab.Check(0, bad); !errors.As(err, &pe) {
				t.Fatalf("a flipped last byte: %v, want a *PieceError", err)
			}
		})
	}

	t.Run("a blob that does not match its digest yields no table", func(t *testing.T) {
		bad := bytes.Clone(data)
		bad[500] ^= 0x80
		tab, err := TableOf(context.Background(), d, 4096, bytes.NewReader(bad))
		var mm *DigestMismatchError
		if !errors.As(err, &mm) || tab != nil || mm.Got != digest.FromBytes(bad) {
			t.Fatalf("got %v, %v; want a *DigestMismatchError naming what it hashes to, and no table", tab, err)
		}
	})
	t.Run("a read error is returned", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := TableOf(context.Background(), d, 4096, iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	})
	t.Run("a cancelled context stops it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := TableOf(ctx, d, 4096, bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		if _, err := TableOf(context.Background(), "sha256:nothex", 4096, bytes.NewReader(data)); err == nil {
			t.Fatal("a malformed digest: no error")
		}
		if _, err := TableOf(context.Background(), d, 0, bytes.NewReader(data)); err == nil {
			t.Fatal("piece size 0: no error")
		}
	})
}
