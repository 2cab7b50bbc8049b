package lazy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// corruptSource serves data, flipping the byte at flipAt in the first
// corruptions answers that carry it (every answer when corruptions < 0).
// The bytes a registry sends cannot be corrupted on demand; the end-to-end
// tests do it with a proxy in front of a real one.
type corruptSource struct {
	data        []byte
	flipAt      int64
	corruptions int64
	flipped     atomic.Int64
	requests    atomic.Int64
	streams     atomic.Int64
	noRange     bool // ranges past byte 0 are ignored: whole-blob streams
}

func (s *corruptSource) flip(p []byte, off int64) {
	if s.flipAt >= off && s.flipAt < off+int64(len(p)) && (s.corruptions < 0 || s.flipped.Load() < s.corruptions) {
		s.flipped.Add(1)
		p[s.flipAt-off] ^= 0x40
	}
}

func (s *corruptSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	if s.noRange && off > 0 {
		return errIgnoresRange{}
	}
	s.requests.Add(1)
	var sent atomic.Int64
	at := off
	return serveParts(s.data, parts, off, func(i int) {
		s.flip(parts[i], at)
		at += int64(len(parts[i]))
		done(i)
	}, &sent)
}

func (s *corruptSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	s.streams.Add(1)
	b := bytes.Clone(s.data)
	s.flip(b, 0)
	return fn(bytes.NewReader(b), int64(len(b)))
}

// piecesFetcher makes a Fetcher whose blob dg of data is checked by a
// table of ps-byte pieces (none when ps is 0: by its digest, one piece).
func piecesFetcher(t *testing.T, src Source, data []byte, cs, ps int64, disk *cache.Disk) (*Fetcher, digest.Digest) {
	t.Helper()
	dg := digest.FromBytes(data)
	var found []integrity.Found
	if ps > 0 {
		b := integrity.NewBuilder(digest.SHA256, ps)
		b.Write(data)
		found = append(found, integrity.Found{Table: b.Table(), From: "test"})
	}
	v, dec, err := integrity.NewVerifier(integrity.Pieces, cs, []ocispec.Descriptor{{Digest: dg, Size: int64(len(data))}}, found)
	if err != nil {
		t.Fatal(err)
	}
	if dec[0].Mode != integrity.Pieces {
		t.Fatalf("blob checked by %s, want pieces", dec[0].Mode)
	}
	opts := Options{ChunkSize: cs, Integrity: v, Host: "test-registry"}
	if disk != nil {
		opts.Disk = disk
	}
	return fetcherWith(t, src, opts), dg
}

// TestPiecesCorruptOnceIsFetchedAgain: one wrong byte in one answer; the
// read inside its piece gets the right bytes after a second fetch, with
// and without a disk cache, through range requests and whole-blob
// streams, with a table and for a blob that is one piece. Nothing wrong
// lands in either cache.
func TestPiecesCorruptOnceIsFetchedAgain(t *testing.T) {
	const cs = 256 << 10
	for _, tc := range []struct {
		name    string
		size    int64
		ps      int64
		disk    bool
		noRange bool
	}{
		{"table, memory only", 10*cs + 77, 64 << 10, false, false},
		{"table, disk cache", 10*cs + 77, 64 << 10, true, false},
		{"table, pieces as large as chunks", 10 * cs, cs, true, false},
		{"one-piece blob by its digest", cs - 5, 0, true, false},
		{"table, server ignores Range", 10*cs + 77, 64 << 10, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := fixture.RandomBytes(7, int(tc.size))
			flipAt := tc.size / 2
			src := &corruptSource{data: data, flipAt: flipAt, corruptions: 1, noRange: tc.noRange}
			var disk *cache.Disk
			if tc.disk {
				disk = openDisk(t, t.TempDir(), cs, 64<<20)
			}
			f, dg := piecesFetcher(t, src, data, cs, tc.ps, disk)
			b := f.Blob(dg, tc.size)
			off := flipAt &^ 4095
			p := make([]byte, min(4096, tc.size-off))
			if _, err := b.ReadAt(context.Background(), p, off); err != nil {
				t.Fatalf("read at %d: %v", off, err)
			}
			if !bytes.Equal(p, data[off:off+int64(len(p))]) {
				t.Fatal("the read returned wrong bytes")
			}
			if src.flipped.Load() != 1 {
				t.Fatalf("%d answers corrupted, want 1 (the test did not corrupt anything)", src.flipped.Load())
			}
			if tc.noRange {
				if src.streams.Load() < 2 {
					t.Fatalf("%d streams, want a second one for the bad chunk", src.streams.Load())
				}
			} else if src.requests.Load() != 2 {
				t.Fatalf("%d requests, want 2 (one corrupted, one again)", src.requests.Load())
			}
			if f.diskq != nil {
				f.diskq.wait()
			}
			k := cache.Key{Digest: dg, Index: flipAt / cs}
			if c, ok := f.cache.Get(k); !ok || !bytes.Equal(c, data[k.Index*cs:k.Index*cs+int64(len(c))]) {
				t.Fatalf("memory cache holds chunk %d: %v, right bytes: want both", k.Index, ok)
			}
			if disk != nil {
				c := make([]byte, min(cs, tc.size-k.Index*cs))
				if ok, err := disk.ReadAt(k, c, 0); err != nil || !ok || !bytes.Equal(c, data[k.Index*cs:]) && !bytes.Equal(c, data[k.Index*cs:k.Index*cs+int64(len(c))]) {
					t.Fatalf("disk cache chunk %d: ok %v, err %v, or wrong bytes", k.Index, ok, err)
				}
			}
		})
	}
}

// TestPiecesCorruptEveryTimeFails: when every answer is wrong the read
// fails with ErrCorruptPiece naming the piece and the host, after two
// fetches; the chunk lands in no cache, and the rest of the blob reads.
func TestPiecesCorruptEveryTimeFails(t *testing.T) {
	const cs, ps = 256 << 10, 64 << 10
	for _, noRange := range []bool{false, true} {
		t.Run(map[bool]string{false: "ranges", true: "streams"}[noRange], func(t *testing.T) {
			data := fixture.RandomBytes(8, 6*cs)
			flipAt := int64(3*cs + ps + 9)
			src := &corruptSource{data: data, flipAt: flipAt, corruptions: -1, noRange: noRange}
			disk := openDisk(t, t.TempDir(), cs, 64<<20)
			f, dg := piecesFetcher(t, src, data, cs, ps, disk)
			b := f.Blob(dg, int64(len(data)))
			_, err := b.ReadAt(context.Background(), make([]byte, 4096), flipAt&^4095)
			var pe *integrity.PieceError
			if !errors.Is(err, ErrCorruptPiece) || !errors.As(err, &pe) || pe.Piece != flipAt/ps {
				t.Fatalf("read: %v, want ErrCorruptPiece for piece %d", err, flipAt/ps)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("test-registry")) {
				t.Errorf("error %q does not name the host", err)
			}
			if src.flipped.Load() != 2 {
				t.Errorf("%d corrupted answers, want 2 (a fetch and one more)", src.flipped.Load())
			}
			f.diskq.wait()
			k := cache.Key{Digest: dg, Index: flipAt / cs}
			if _, ok := f.cache.Get(k); ok {
				t.Error("the bad chunk is in the memory cache")
			}
			if disk.Has(k) {
				t.Error("the bad chunk is in the disk cache")
			}
			p := make([]byte, cs)
			if _, err := b.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:cs]) {
				t.Fatalf("a good chunk: %v", err)
			}
		})
	}
}

// TestPiecesCorruptOnDisk: a chunk damaged in the disk cache is found
// when read, removed, and fetched again: the reader gets the right bytes.
func TestPiecesCorruptOnDisk(t *testing.T) {
	const cs, ps = 256 << 10, 64 << 10
	data := fixture.RandomBytes(9, 4*cs)
	dir := t.TempDir()
	disk := openDisk(t, dir, cs, 64<<20)
	dg := digest.FromBytes(data)
	k := cache.Key{Digest: dg, Index: 2}
	bad := bytes.Clone(data[2*cs : 3*cs])
	bad[ps+100] ^= 1
	if err := disk.Add(k, int64(len(data)), bad); err != nil {
		t.Fatal(err)
	}
	src := &corruptSource{data: data, flipAt: -1}
	f, _ := piecesFetcher(t, src, data, cs, ps, disk)
	b := f.Blob(dg, int64(len(data)))
	for _, r := range []struct{ off, n int64 }{{2*cs + ps + 64, 512}, {2 * cs, cs}} {
		p := make([]byte, r.n)
		if _, err := b.ReadAt(context.Background(), p, r.off); err != nil {
			t.Fatalf("read %d at %d: %v", r.n, r.off, err)
		}
		if !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Fatalf("read %d at %d: wrong bytes", r.n, r.off)
		}
	}
	if src.requests.Load() != 1 {
		t.Fatalf("%d requests, want 1 (the damaged chunk fetched again once)", src.requests.Load())
	}
	f.diskq.wait()
	c := make([]byte, cs)
	if ok, err := disk.ReadAt(k, c, 0); err != nil || !ok || !bytes.Equal(c, data[2*cs:3*cs]) {
		t.Fatalf("the disk cache does not hold the right chunk now: ok %v, err %v", ok, err)
	}
}

// TestPiecesCompleteBlobWithDamagedChunk: a blob complete on disk, never
// verified, with one chunk damaged: its whole check fails, the damaged
// chunk is found by its pieces and removed, the blob is not condemned,
// and every read gets the right bytes (the chunk fetched again).
func TestPiecesCompleteBlobWithDamagedChunk(t *testing.T) {
	const cs, ps = 256 << 10, 64 << 10
	data := fixture.RandomBytes(10, 4*cs)
	disk := openDisk(t, t.TempDir(), cs, 64<<20)
	dg := digest.FromBytes(data)
	for i := int64(0); i < 4; i++ {
		c := bytes.Clone(data[i*cs : (i+1)*cs])
		if i == 2 {
			c[77] ^= 1
		}
		if err := disk.Add(cache.Key{Digest: dg, Index: i}, int64(len(data)), c); err != nil {
			t.Fatal(err)
		}
	}
	src := &corruptSource{data: data, flipAt: -1}
	f, _ := piecesFetcher(t, src, data, cs, ps, disk)
	b := f.Blob(dg, int64(len(data)))
	p := make([]byte, 4096)
	if _, err := b.ReadAt(context.Background(), p, 0); err != nil {
		t.Fatal(err)
	}
	// The first disk hit started the whole check; it removes chunk 2.
	waitFor(t, "the damaged chunk to be removed", func() bool { return !disk.Has(cache.Key{Digest: dg, Index: 2}) })
	all, err := readAll(t, b, cs)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("whole blob after the repair: %v, right bytes %v", err, bytes.Equal(all, data))
	}
	if src.requests.Load() != 1 {
		t.Errorf("%d requests, want 1 (the damaged chunk)", src.requests.Load())
	}
	f.diskq.wait()
	waitFor(t, "the blob to be verified", func() bool { return disk.Verified(dg) })
}

// TestPiecesWarmRepairsDamagedChunk: Warm of a blob complete on disk with
// one damaged chunk removes it, fetches it again and ends verified.
func TestPiecesWarmRepairsDamagedChunk(t *testing.T) {
	const cs, ps = 256 << 10, 64 << 10
	data := fixture.RandomBytes(11, 4*cs+9)
	disk := openDisk(t, t.TempDir(), cs, 64<<20)
	dg := digest.FromBytes(data)
	for i := int64(0); i < 5; i++ {
		c := bytes.Clone(data[i*cs : min((i+1)*cs, int64(len(data)))])
		if i == 1 {
			c[5] ^= 2
		}
		if err := disk.Add(cache.Key{Digest: dg, Index: i}, int64(len(data)), c); err != nil {
			t.Fatal(err)
		}
	}
	src := &corruptSource{data: data, flipAt: -1}
	f, _ := piecesFetcher(t, src, data, cs, ps, disk)
	if err := f.Blob(dg, int64(len(data))).Warm(context.Background()); err != nil {
		t.Fatalf("Warm: %v", err)
	}
	if !disk.Verified(dg) || src.requests.Load() != 1 {
		t.Fatalf("after Warm: verified %v, %d requests; want verified after 1 (the damaged chunk)", disk.Verified(dg), src.requests.Load())
	}
	c := make([]byte, cs)
	if ok, err := disk.ReadAt(cache.Key{Digest: dg, Index: 1}, c, 0); err != nil || !ok || !bytes.Equal(c, data[cs:2*cs]) {
		t.Fatalf("chunk 1 on disk: ok %v, err %v, or wrong bytes", ok, err)
	}
}
