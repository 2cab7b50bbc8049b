package lazy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestCloseWithFetchesInFlight: Close returns, every time, while runs are
// streaming chunks into the disk-write queue. (A chunk stored after the
// writer had drained the queue used to be counted as pending forever, and
// Close never returned.)
func TestCloseWithFetchesInFlight(t *testing.T) {
	const cs = 4096
	data := fixture.RandomBytes(1, 64*cs)
	disk := openDisk(t, t.TempDir(), cs, 1<<20)
	iterations := 1000
	if testing.Short() {
		iterations = 30
	}
	for it := range iterations {
		src := &partSource{memSource: memSource{data: data}, pause: time.Duration(rand.IntN(50)) * time.Microsecond}
		mem, err := cache.NewMemory(1<<20, cs)
		if err != nil {
			t.Fatal(err)
		}
		// No t.Cleanup(f.Close): a Close that hangs must fail the test, not
		// hang its cleanup.
		f, err := NewFetcher(src, mem, Options{ChunkSize: cs, MaxRequest: 4 * cs, Disk: disk})
		if err != nil {
			t.Fatal(err)
		}
		d := digest.FromString(fmt.Sprint(it))
		b := f.Blob(d, int64(len(data)))
		b.Prefetch(0, int64(len(data)))
		go func() { _, _ = b.ReadAt(context.Background(), make([]byte, 3*cs), 40*cs) }()
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		closed := make(chan struct{})
		go func() { f.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close did not return with fetches in flight", it)
		}
	}
}
