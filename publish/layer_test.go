package publish

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
)

func TestFileLayerStreamsTheHashedBytes(t *testing.T) {
	dir := t.TempDir()
	p := writeRandom(t, dir, "f", 3<<20+5)
	rep := &reporter{}
	b, err := hashFile(t.Context(), roleFile{role: "kernel", path: p}, "x", rep)
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
	if _, err := hashFile(ctx, roleFile{role: "disk", path: p}, "x", &reporter{}); err == nil {
		t.Fatal("hashFile succeeded with a cancelled context")
	}
}
