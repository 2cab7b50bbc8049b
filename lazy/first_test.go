package lazy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// changingSource serves a blob whose bytes a test can change under the
// Fetcher, as a file on disk can be, and counts the bytes it serves.
type changingSource struct {
	mu    sync.Mutex
	data  []byte
	bytes atomic.Int64
}

func (s *changingSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return serveParts(s.data, parts, off, done, &s.bytes)
}

func (s *changingSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	return errors.New("not used")
}

// flip changes the byte at off.
func (s *changingSource) flip(off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[off] ^= 0x20
}

// truncate cuts the blob to n bytes.
func (s *changingSource) truncate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = s.data[:n]
}

// wholeOnly is the policy of a blob without a chunk table under --verify
// auto: checked whole, by no pieces (larger than one chunk).
func wholeOnly(t *testing.T, mode integrity.Mode, chunk int64, d digest.Digest, size int64) *integrity.Verifier {
	t.Helper()
	v, dec, err := integrity.NewVerifier(mode, chunk, []ocispec.Descriptor{{Digest: d, Size: size}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mode != integrity.Off && dec[0].Mode != integrity.Whole {
		t.Fatalf("decision %+v, want whole", dec[0])
	}
	return v
}

func TestCheckFirst(t *testing.T) {
	const chunk = 64 << 10
	const size = 20*chunk + 1000
	newBlob := func(t *testing.T, opts Options) (*Blob, *changingSource, []byte) {
		data := fixture.RandomBytes(3, size)
		src := &changingSource{data: bytes.Clone(data)}
		d := digest.FromBytes(data)
		opts.ChunkSize = chunk
		if opts.Integrity == nil {
			opts.Integrity = wholeOnly(t, integrity.Auto, chunk, d, size)
		}
		f := fetcherWith(t, src, opts)
		return f.Blob(d, size), src, data
	}
	read := func(b *Blob, off int64, n int) ([]byte, error) {
		p := make([]byte, n)
		_, err := b.ReadAt(context.Background(), p, off)
		return p, err
	}

	t.Run("a blob that does not match its digest serves no byte", func(t *testing.T) {
		// Nothing of it was served: nothing to drop elsewhere (and the
		// mount's OnCorrupt, called from inside a FUSE read, would wait
		// for that read's own pages).
		b, src, _ := newBlob(t, Options{CheckFirst: true, OnCorrupt: func(digest.Digest) { t.Error("OnCorrupt called") }})
		src.flip(size - 10) // far from what is read
		for _, off := range []int64{0, 5 * chunk, size - 10} {
			if _, err := read(b, off, 4096); !errors.Is(err, ErrCorruptBlob) {
				t.Fatalf("read at %d: %v, want ErrCorruptBlob", off, err)
			}
		}
		if got := src.bytes.Load(); got != size {
			t.Fatalf("served %d bytes, want %d: one pass, and the failure remembered", got, size)
		}
	})

	t.Run("without CheckFirst and a disk cache such a blob is served unchecked", func(t *testing.T) {
		// The gap CheckFirst closes: what a registry mount with
		// --cache-dir none does, documented in the README.
		b, src, data := newBlob(t, Options{})
		src.flip(size - 10)
		got, err := read(b, 0, 4096)
		if err != nil || !bytes.Equal(got, data[:4096]) {
			t.Fatalf("read: %v", err)
		}
	})

	t.Run("bytes changed after the check fail by the table made from it", func(t *testing.T) {
		b, src, data := newBlob(t, Options{CheckFirst: true})
		got, err := read(b, 0, 4096)
		if err != nil || !bytes.Equal(got, data[:4096]) {
			t.Fatalf("first read: %v", err)
		}
		if n := src.bytes.Load(); n != size+chunk {
			t.Fatalf("the first read made the source serve %d bytes, want the whole blob once and its chunk (%d)", n, size+chunk)
		}
		// Chunk 7 is not cached: it is fetched, and checked.
		src.flip(7*chunk + 100)
		if _, err := read(b, 7*chunk, 4096); !errors.Is(err, ErrCorruptPiece) {
			t.Fatalf("read of a changed chunk: %v, want ErrCorruptPiece", err)
		}
		// The others are still served, right.
		if got, err := read(b, 12*chunk, 8192); err != nil || !bytes.Equal(got, data[12*chunk:12*chunk+8192]) {
			t.Fatalf("read of an unchanged chunk: %v", err)
		}
		// The last chunk, shorter than the others, is checked too.
		src.flip(size - 1)
		if _, err := read(b, size-500, 500); !errors.Is(err, ErrCorruptPiece) {
			t.Fatalf("read of the changed last chunk: %v, want ErrCorruptPiece", err)
		}
	})

	t.Run("a blob shorter than its descriptor fails", func(t *testing.T) {
		b, src, _ := newBlob(t, Options{CheckFirst: true})
		src.truncate(size - 2000)
		if _, err := read(b, 0, 4096); !errors.Is(err, ErrBlobSize) || !errors.Is(err, ErrCorruptBlob) {
			t.Fatalf("read: %v, want ErrBlobSize and ErrCorruptBlob", err)
		}
	})

	t.Run("concurrent first readers share one pass", func(t *testing.T) {
		b, src, data := newBlob(t, Options{CheckFirst: true})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				off := int64(g) * chunk
				got, err := read(b, off, 100)
				if err == nil && !bytes.Equal(got, data[off:off+100]) {
					err = errors.New("wrong bytes")
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := src.bytes.Load(); n != size+16*chunk {
			t.Fatalf("the source served %d bytes, want one pass and 16 chunks (%d)", n, size+16*chunk)
		}
	})

	t.Run("prefetch waits for the check and lands nothing of a bad blob", func(t *testing.T) {
		b, src, _ := newBlob(t, Options{CheckFirst: true})
		src.flip(3)
		if err := b.Fill(context.Background(), false); !errors.Is(err, ErrCorruptBlob) {
			t.Fatalf("Fill: %v, want ErrCorruptBlob", err)
		}
		for i := range numChunks(size, chunk) {
			if _, ok := b.f.cache.Get(cache.Key{Digest: b.digest, Index: i}); ok {
				t.Fatalf("chunk %d of a blob that failed is in memory", i)
			}
		}
	})

	t.Run("a blob with pieces to check is not hashed first", func(t *testing.T) {
		data := fixture.RandomBytes(4, size)
		d := digest.FromBytes(data)
		tb := integrity.NewBuilder(digest.SHA256, chunk)
		tb.Write(data)
		v, _, err := integrity.NewVerifier(integrity.Auto, chunk, []ocispec.Descriptor{{Digest: d, Size: size}}, []integrity.Found{{Table: tb.Table(), From: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		src := &changingSource{data: data}
		b := fetcherWith(t, src, Options{ChunkSize: chunk, Integrity: v, CheckFirst: true}).Blob(d, size)
		if _, err := read(b, 0, 100); err != nil {
			t.Fatal(err)
		}
		if n := src.bytes.Load(); n != chunk {
			t.Fatalf("served %d bytes, want one chunk", n)
		}
	})

	t.Run("--verify off hashes nothing", func(t *testing.T) {
		data := fixture.RandomBytes(5, size)
		d := digest.FromBytes(data)
		src := &changingSource{data: data}
		b := fetcherWith(t, src, Options{ChunkSize: chunk, Integrity: wholeOnly(t, integrity.Off, chunk, d, size), CheckFirst: true}).Blob(d, size)
		if _, err := read(b, 0, 100); err != nil {
			t.Fatal(err)
		}
		if n := src.bytes.Load(); n != chunk {
			t.Fatalf("served %d bytes, want one chunk", n)
		}
	})

	t.Run("with a disk cache, a damaged chunk on disk is caught by the table", func(t *testing.T) {
		disk := openDisk(t, t.TempDir(), chunk, 64<<20)
		data := fixture.RandomBytes(7, size)
		d := digest.FromBytes(data)
		// An earlier process left a chunk that is not the blob's.
		bad := bytes.Clone(data[2*chunk : 3*chunk])
		bad[9] ^= 1
		if err := disk.Add(cache.Key{Digest: d, Index: 2}, size, bad); err != nil {
			t.Fatal(err)
		}
		src := &changingSource{data: data}
		b := fetcherWith(t, src, Options{ChunkSize: chunk, Disk: disk, Integrity: wholeOnly(t, integrity.Auto, chunk, d, size), CheckFirst: true}).Blob(d, size)
		got, err := read(b, 2*chunk, 100)
		if err != nil || !bytes.Equal(got, data[2*chunk:2*chunk+100]) {
			t.Fatalf("read: %v; right bytes: %v", err, bytes.Equal(got, data[2*chunk:2*chunk+100]))
		}
	})

	t.Run("a reader stops waiting at its deadline; the check goes on", func(t *testing.T) {
		data := fixture.RandomBytes(6, size)
		d := digest.FromBytes(data)
		src := &memSource{data: data, delay: 20 * time.Millisecond}
		f := fetcherWith(t, src, Options{ChunkSize: chunk, MaxRequest: chunk, Integrity: wholeOnly(t, integrity.Auto, chunk, d, size), CheckFirst: true})
		b := f.Blob(d, size)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		if _, err := b.ReadAt(ctx, make([]byte, 10), 0); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read: %v, want DeadlineExceeded", err)
		}
		p := make([]byte, 10)
		if _, err := b.ReadAt(context.Background(), p, 0); err != nil || !bytes.Equal(p, data[:10]) {
			t.Fatalf("read after the check: %v", err)
		}
	})
}
