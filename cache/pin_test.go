package cache

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/integrity"
)

// verifyAll stores every chunk of b in d and marks it verified.
func verifyAll(t *testing.T, d *Disk, b testBlob) {
	t.Helper()
	addAll(t, d, b)
	err := d.Verify(b.digest, b.chunks(), func(r io.Reader) error { return integrity.CheckBlob(context.Background(), b.digest, r) })
	if err != nil {
		t.Fatal(err)
	}
}

// present counts the chunks of b that d has.
func presentChunks(d *Disk, b testBlob) int64 {
	var n int64
	for i := range b.chunks() {
		if d.Has(b.key(i)) {
			n++
		}
	}
	return n
}

// TestPinSurvivesEviction: a blob pinned through the file OpenPinned gave
// survives an eviction pass of another Disk on the same directory (as of
// another process), even once the Disk that pinned it is closed, and the
// file reads the blob's bytes; the pass does not evict the other blobs to
// make up for it. Once the file is closed the blob is evicted like any.
func TestPinSurvivesEviction(t *testing.T) {
	dir := t.TempDir()
	const limit = 8 * testChunk
	pinner := openTestDisk(t, dir, testChunk, limit)
	pinnedBlob := newTestBlob(40, 6*testChunk, testChunk)
	verifyAll(t, pinner, pinnedBlob)
	f, err := pinner.OpenPinned(pinnedBlob.digest)
	if err != nil || f == nil {
		t.Fatalf("OpenPinned of a verified blob = %v, %v; want a file", f, err)
	}
	defer f.Close()
	pinner.Close() // the pin is the file's, not the Disk's

	other := openTestDisk(t, dir, testChunk, limit)
	if !other.Pinned(pinnedBlob.digest) {
		t.Fatal("another Disk does not see the pin")
	}
	// Touch the pinned blob first, so that least recently used would pick it.
	time.Sleep(time.Millisecond)
	rest := newTestBlob(41, 8*testChunk, testChunk)
	addAll(t, other, rest) // 14 chunks for a limit of 8
	if err := other.evict(0); err != nil {
		t.Fatal(err)
	}
	if n := presentChunks(other, pinnedBlob); n != pinnedBlob.chunks() {
		t.Fatalf("the pinned blob has %d of its %d chunks after eviction, want all", n, pinnedBlob.chunks())
	}
	if !other.Verified(pinnedBlob.digest) {
		t.Error("the pinned blob lost its verified mark")
	}
	// The limit holds for the others on top of the pinned bytes: the 8
	// chunks of the limit are not evicted to make up for the pinned ones.
	if n := presentChunks(other, rest); n != rest.chunks() {
		t.Errorf("the unpinned blob kept %d of %d chunks: evicted to make up for the pinned one", n, rest.chunks())
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, pinnedBlob.data) {
		t.Fatalf("the pinned file reads %d bytes (%v), not the blob", len(got), err)
	}

	f.Close()
	if other.Pinned(pinnedBlob.digest) {
		t.Fatal("still pinned after the file was closed")
	}
	// What the last pass found pinned counts on top of the limit for a
	// moment only: once that is over, a pin gone lets no writer past it.
	if got := other.usage.pinned(); got != pinnedBlob.size() {
		t.Fatalf("the last pass found %d bytes pinned, want %d", got, pinnedBlob.size())
	}
	other.usage.pinsAt().Store(time.Now().Add(-pinsFresh - time.Millisecond).UnixNano())
	if got := other.usage.pinned(); got != 0 {
		t.Fatalf("%d pinned bytes still count after %s", got, pinsFresh)
	}
	addAll(t, other, newTestBlob(42, 8*testChunk, testChunk))
	if n := presentChunks(other, pinnedBlob); n != 0 {
		t.Errorf("the blob kept %d chunks after its pin went and 8 newer chunks filled the cache", n)
	}
}

// TestOpenPinnedRefuses: only a blob complete, verified and unchanged is
// handed out; Remove and Drop take the mark away.
func TestOpenPinnedRefuses(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	// mustNot: no file; why, if said, contains want ("" for nothing said).
	mustNotSay := func(what string, dg digest.Digest, want string) {
		t.Helper()
		f, err := d.OpenPinned(dg)
		if f != nil {
			f.Close()
			t.Errorf("%s: OpenPinned gave a file", what)
		}
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: OpenPinned: %v", what, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: OpenPinned: %v, want an error saying %q", what, err, want)
		}
	}
	mustNot := func(what string, dg digest.Digest) { t.Helper(); mustNotSay(what, dg, "") }
	mustNot("a blob not in the cache", digest.FromString("absent"))
	b := newTestBlob(43, 3*testChunk, testChunk)
	addAll(t, d, b)
	mustNot("a complete blob not verified", b.digest)

	verifyAll(t, d, b)
	f, err := d.OpenPinned(b.digest)
	if err != nil || f == nil {
		t.Fatalf("OpenPinned of a verified blob: %v, %v", f, err)
	}
	f.Close()

	// Someone writes to the data file (the same byte: only its mtime
	// says so).
	time.Sleep(10 * time.Millisecond)
	w, err := os.OpenFile(d.blobDir(b.digest)+"/data", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(b.data[:1], 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	mustNotSay("a data file written to since it was verified", b.digest, "changed after it was verified")

	verifyAll(t, d, b)
	d.Remove(b.key(1))
	mustNot("a blob with a chunk removed", b.digest)
	if d.Verified(b.digest) {
		t.Error("Remove left the verified mark")
	}

	c := newTestBlob(44, 2*testChunk, testChunk)
	verifyAll(t, d, c)
	d.Drop(c.digest)
	mustNot("a dropped blob", c.digest)
}

// TestPinWaitsForPass: while an eviction pass holds a blob, no pin is
// taken on it; once the pass is done, one is.
func TestPinWaitsForPass(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(45, 2*testChunk, testChunk)
	verifyAll(t, d, b)
	evictor := openTestDisk(t, dir, testChunk, 1<<20)
	eb, err := evictor.blob(b.digest, 0, false)
	if err != nil || eb == nil {
		t.Fatal(err)
	}
	if !eb.holdPins() {
		t.Fatal("a pass could not hold an unpinned blob")
	}
	if f, _ := d.OpenPinned(b.digest); f != nil {
		f.Close()
		t.Fatal("pinned while a pass held the blob")
	}
	eb.releasePins()
	f, err := d.OpenPinned(b.digest)
	if err != nil || f == nil {
		t.Fatalf("no pin after the pass: %v", err)
	}
	defer f.Close()
	if eb.holdPins() {
		t.Fatal("a pass held a pinned blob")
	}
}
