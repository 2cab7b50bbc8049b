package blobstore

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/test/faulty"
)

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
