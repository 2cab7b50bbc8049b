package publish

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/osimagefs/osimagefs/integrity"
)

func TestFileLayerStreamsTheHashedBytes(t *testing.T) {
	dir := t.TempDir()
	p := writeRandom(t, dir, "f", 3<<20+5)
	rep := &reporter{}
	b, _, err := hashFile(t.Context(), roleFile{role: "kernel", path: p}, "x", false, rep)
	if err != nil {
		t.Fatal(err)
	}
	if b.Digest != fileDigest(t, p) || b.Size != 3<<20+5 {
		t.Fatalf("hashFile = %+v", b)
	}
	l, err := newFileLayer(b, rep)
	if err != nil {
		t.Fatal(err)
	}
	if l.uploaded() {
		t.Error("uploaded before Compressed")
	}
	for i := range 2 { // a retry reads the file again from the start
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want, _ := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d: %d bytes, err %v", i, len(got), err)
		}
	}
	if !l.uploaded() {
		t.Error("uploaded() = false after Compressed")
	}

	// Grown since hashing: only the hashed bytes are sent.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("more"))
	f.Close()
	rc, _ := l.Compressed()
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || int64(len(got)) != b.Size {
		t.Errorf("grown file: %d bytes, err %v; want %d", len(got), err, b.Size)
	}

	// Shrunk since hashing: an error, not a short body.
	if err := os.Truncate(p, 100); err != nil {
		t.Fatal(err)
	}
	rc, _ = l.Compressed()
	_, err = io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, errChanged) {
		t.Errorf("shrunk file: err = %v, want errChanged", err)
	}
}

func TestHashFileHonoursContext(t *testing.T) {
	p := writeRandom(t, t.TempDir(), "f", 10)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := hashFile(ctx, roleFile{role: "disk", path: p}, "x", true, &reporter{}); err == nil {
		t.Fatal("hashFile succeeded with a cancelled context")
	}
}

// TestHashFileBuildsTables: the one read that hashes a file also builds
// its table, for a file larger than one piece only.
func TestHashFileBuildsTables(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, integrity.DefaultPieceSize, integrity.DefaultPieceSize + 1, 3<<20 + 5} {
		p := writeRandom(t, dir, "f", size)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b, tb, err := hashFile(t.Context(), roleFile{role: "disk", path: p}, "x", true, &reporter{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Digest != digest.FromBytes(data) || b.Size != int64(size) {
			t.Errorf("%d bytes: hashFile = %+v", size, b)
		}
		if size <= integrity.DefaultPieceSize {
			if tb != nil {
				t.Errorf("%d bytes: a table for a file of one piece", size)
			}
			continue
		}
		if tb == nil {
			t.Fatalf("%d bytes: no table", size)
		}
		if tb.Blob != b.Digest || tb.Size != b.Size || tb.PieceSize != integrity.PieceSizeFor(int64(size)) {
			t.Errorf("%d bytes: table for %s, %d bytes in pieces of %d", size, tb.Blob, tb.Size, tb.PieceSize)
		}
		if err := tb.Check(0, data); err != nil {
			t.Errorf("%d bytes: the file does not pass its own table: %v", size, err)
		}
		bad := bytes.Clone(data)
		bad[len(bad)-1] ^= 1
		var pe *integrity.PieceError
		if err := tb.Check(0, bad); !errors.As(err, &pe) || pe.Piece != tb.Pieces()-1 {
			t.Errorf("%d bytes, last byte flipped: %v", size, err)
		}
	}
}
