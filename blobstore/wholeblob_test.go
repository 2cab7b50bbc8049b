package blobstore

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestFaultRangeIgnoredMemory reads 4 KiB far into a 256 MiB blob from a
// server that ignores Range, through lazy (its stream of the whole blob,
// into a 4 MiB memory cache), and checks that the blob is streamed
// through, not buffered: the heap stays small while 256 MiB flow by.
func TestFaultRangeIgnoredMemory(t *testing.T) {
	fixture.SkipInShort(t, "pushes a 256 MiB blob")
	const size = 256 << 20
	path := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	if _, err := io.CopyN(f, r, size); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	desc, err := registrytest.PushBlobFile(context.Background(), reg.Host(), faultRepo, path, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	front := faulty.New(t, reg.Host())
	front.Inject(0, faulty.IgnoreRange())
	s, err := Open(context.Background(), front.Host()+"/"+faultRepo+":any", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 1 << 20
	mem, err := cache.NewMemory(4<<20, chunk)
	if err != nil {
		t.Fatal(err)
	}
	fetcher, err := lazy.NewFetcher(s, mem, lazy.Options{ChunkSize: chunk, FetchTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer fetcher.Close()
	blob := fetcher.Blob(desc.Digest, size)

	for _, off := range []int64{size - 8192 - 12345, size/2 + 777} {
		want := make([]byte, 4096)
		if _, err := f.ReadAt(want, off); err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		})
		p := make([]byte, 4096)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := blob.ReadAt(ctx, p, off)
		cancel()
		took := time.Since(start)
		close(stop)
		wg.Wait()
		if err != nil || !bytes.Equal(p, want) {
			t.Fatalf("read at %d: err %v, bytes right: %v", off, err, bytes.Equal(p, want))
		}
		growth := int64(peak.Load()) - int64(base)
		t.Logf("4 KiB at %d of a 256 MiB whole-blob answer: %s, heap grew by at most %.1f MiB", off, took.Round(time.Millisecond), float64(growth)/(1<<20))
		if growth > 32<<20 {
			t.Fatalf("heap grew by %d MiB while streaming past a whole-blob answer", growth>>20)
		}
	}
	f.Close()
}

// TestFaultWrongAnswersNeverCached sends wrong answers (misplaced,
// mislabelled, short, long) through the whole read path, lazy's chunk
// fetch and memory cache included: the read fails at its deadline, no
// wrong byte reaches the caller or the cache, and once the server is
// fixed the same read returns the right bytes.
func TestFaultWrongAnswersNeverCached(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 3<<20, Options{})
	for _, f := range []faulty.Fault{
		faulty.ShiftRange(1), faulty.ShiftRange(-1 << 20), faulty.LieContentRange(),
		faulty.CutBody(1000), faulty.ShortChunked(1000), faulty.LongBody(1, true), faulty.LongBody(10, false),
	} {
		t.Run(f.Name, func(t *testing.T) {
			mem, err := cache.NewMemory(16<<20, 256<<10)
			if err != nil {
				t.Fatal(err)
			}
			fetcher, err := lazy.NewFetcher(e.store, mem, lazy.Options{ChunkSize: 256 << 10, FetchTimeout: 800 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer fetcher.Close()
			blob := fetcher.Blob(e.desc.Digest, e.desc.Size)

			e.front.Inject(0, f)
			p := bytes.Repeat([]byte{0xEE}, 600_000)
			const off = 1<<20 + 5
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n, err := blob.ReadAt(ctx, p, off)
			cancel()
			if err == nil || n != 0 {
				t.Fatalf("read through a server giving wrong answers: n %d, err %v", n, err)
			}
			if mem.Len() != 0 {
				t.Fatalf("%d chunks cached from wrong answers", mem.Len())
			}
			firstErr := err
			faulted := len(e.front.BlobGets())
			e.front.Clear()
			// The other chunks' fills of the failed read go on without it
			// until FetchTimeout; a new read would join them.
			time.Sleep(900 * time.Millisecond)
			e.front.ResetLog()
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
			n, err = blob.ReadAt(ctx, p, off)
			cancel()
			if err != nil || n != len(p) || !bytes.Equal(p, e.data[off:off+len(p)]) {
				t.Fatalf("read after the fault cleared: n %d, err %v", n, err)
			}
			if mem.Len() == 0 {
				t.Fatal("nothing cached after a good read")
			}
			t.Logf("%d wrong answers refused; failed with: %v", faulted, firstErr)
		})
	}
}
