package lazy

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// rangeSource serves blobs from memory and logs every request as
// "<blob name> <off>+<len>" in the order they start; a request whose
// entry is in hold waits until release is closed.
type rangeSource struct {
	blobs   map[digest.Digest][]byte
	names   map[digest.Digest]string
	hold    map[string]bool
	release chan struct{}

	mu    sync.Mutex
	log   []string
	bytes atomic.Int64
}

func newRangeSource(blobs map[string][]byte) *rangeSource {
	s := &rangeSource{blobs: map[digest.Digest][]byte{}, names: map[digest.Digest]string{}, hold: map[string]bool{}, release: make(chan struct{})}
	for n, b := range blobs {
		d := digest.FromBytes(b)
		s.blobs[d], s.names[d] = b, n
	}
	return s
}

func (s *rangeSource) ReadParts(ctx context.Context, d digest.Digest, parts [][]byte, off int64, done func(i int)) error {
	var n int
	for _, p := range parts {
		n += len(p)
	}
	entry := fmt.Sprintf("%s %d+%d", s.names[d], off, n)
	s.mu.Lock()
	s.log = append(s.log, entry)
	s.mu.Unlock()
	if s.hold[entry] {
		select {
		case <-s.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return serveParts(s.blobs[d], parts, off, done, &s.bytes)
}

func (s *rangeSource) StreamBlob(ctx context.Context, d digest.Digest, fn func(body io.Reader, size int64) error) error {
	return fmt.Errorf("rangeSource serves ranges only")
}

func (s *rangeSource) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// TestReplayFetchesExactlyItsRanges: a profile's ranges are fetched
// chunk-aligned, each chunk once, neighbours merged up to MaxRequest, and
// nothing else; a second replay fetches nothing; a cached chunk splits a
// run.
func TestReplayFetchesExactlyItsRanges(t *testing.T) {
	const cs = 4096
	a, b := fixture.RandomBytes(1, 64*cs), fixture.RandomBytes(2, 10*cs+100)
	src := newRangeSource(map[string][]byte{"a": a, "b": b})
	da, db := digest.FromBytes(a), digest.FromBytes(b)
	f := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 1, MaxRequest: 4 * cs})
	A := func(off, n int64) ReplayRange { return ReplayRange{da, int64(len(a)), off, n} }
	B := func(off, n int64) ReplayRange { return ReplayRange{db, int64(len(b)), off, n} }
	profile := []ReplayRange{
		A(0, 10000),         // chunks 0-2
		A(3*cs, 100),        // chunk 3: the same run, now 4 chunks (MaxRequest)
		A(4*cs, 1),          // chunk 4: a run of its own
		B(10*cs, 100),       // b's last chunk, 100 bytes
		A(40000, 5000),      // chunks 9-10
		A(0, 100),           // chunk 0 again: nothing
		A(11*cs-1, 2),       // chunks 10-11: 11 joins the run 9-10
		A(int64(len(a)), 5), // at the end: nothing
	}
	st := f.Replay(context.Background(), profile, 1<<30)
	want := []string{"a 0+16384", "a 16384+4096", "b 40960+100", "a 36864+12288"}
	if got := src.requests(); !reflect.DeepEqual(got, want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	if st.Requests != 4 || st.Bytes != 16384+4096+100+12288 || st.Limited {
		t.Fatalf("stats %+v", st)
	}
	for i := int64(0); i < 12; i++ {
		k := cache.Key{Digest: da, Index: i}
		if got, want := f.isCached(k), i <= 4 || i >= 9; got != want {
			t.Errorf("chunk %d of a cached: %v, want %v", i, got, want)
		}
	}

	// Everything is cached now: nothing is fetched.
	st = f.Replay(context.Background(), profile, 1<<30)
	if got := src.requests(); len(got) != 4 || st.Requests != 0 || st.Skipped != 16384+4096+100+12288 {
		t.Fatalf("second replay: requests %v, stats %+v", got, st)
	}

	// A cached chunk in the middle splits the run; the budget ends it.
	g := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 1, MaxRequest: 8 * cs})
	p := make([]byte, 10)
	if _, err := g.Blob(da, int64(len(a))).ReadAt(context.Background(), p, 2*cs); err != nil {
		t.Fatal(err)
	}
	before := len(src.requests())
	st = g.Replay(context.Background(), []ReplayRange{A(0, 6*cs)}, 4*cs)
	if got := src.requests()[before:]; !reflect.DeepEqual(got, []string{"a 0+8192", "a 12288+8192"}) || !st.Limited || st.Bytes != 4*cs {
		t.Fatalf("split and limited: requests %v, stats %+v", got, st)
	}
}

// TestDemandReadOvertakesReplay: with two request slots, a replay holds
// the one background fetches may take and queues its other runs; a reader
// is served before any of them starts, whether it reads another blob or a
// chunk the replay has claimed (which it then promotes).
func TestDemandReadOvertakesReplay(t *testing.T) {
	const cs = 4096
	for _, c := range []struct {
		name     string
		blob     string
		off      int64
		expected string
	}{
		{"another blob", "b", 0, "b 0+4096"},
		{"a claimed chunk", "a", 6 * cs, "a 24576+4096"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := fixture.RandomBytes(1, 16*cs), fixture.RandomBytes(2, 4*cs)
			src := newRangeSource(map[string][]byte{"a": a, "b": b})
			src.hold["a 0+4096"] = true
			t.Cleanup(func() { close(src.release) })
			da := digest.FromBytes(a)
			f := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 2, MaxRequest: 4 * cs})
			var profile []ReplayRange
			for _, i := range []int64{0, 2, 4, 6} { // four runs of one chunk
				profile = append(profile, ReplayRange{da, int64(len(a)), i * cs, 10})
			}
			replayed := make(chan ReplayStats, 1)
			go func() { replayed <- f.Replay(context.Background(), profile, 1<<30) }()
			waitFor(t, "the first replay request and the claims of the others", func() bool {
				return len(src.requests()) == 1 && f.flights.has(cache.Key{Digest: da, Index: 6})
			})
			time.Sleep(50 * time.Millisecond) // time for a wrongly granted replay request to start
			if got := src.requests(); len(got) != 1 {
				t.Fatalf("replay requests started with the background slot held: %v", got)
			}

			blob := map[string][]byte{"a": a, "b": b}[c.blob]
			p := make([]byte, 100)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := f.Blob(digest.FromBytes(blob), int64(len(blob))).ReadAt(ctx, p, c.off); err != nil {
				t.Fatalf("demand read behind a replay: %v", err)
			}
			if got := src.requests(); !reflect.DeepEqual(got, []string{"a 0+4096", c.expected}) {
				t.Fatalf("requests when the demand read returned: %v, want the held replay request then the demand read", got)
			}
			select {
			case st := <-replayed:
				t.Fatalf("replay ended with a request held: %+v", st)
			default:
			}
		})
	}
}

// TestReplaySpreadsOverParallelRequests: a profile is cut into as many
// requests as may be in flight, not into a few of MaxRequest: over a WAN
// that limits each connection, that is what makes it arrive fast.
func TestReplaySpreadsOverParallelRequests(t *testing.T) {
	const cs = 16 << 10
	a := fixture.RandomBytes(5, 256*cs) // 4 MiB
	src := newRangeSource(map[string][]byte{"a": a})
	da := digest.FromBytes(a)
	f := fetcherWith(t, src, Options{ChunkSize: cs, Parallel: 4, MaxRequest: 256 * cs})
	st := f.Replay(context.Background(), []ReplayRange{{Digest: da, Size: int64(len(a)), Off: 0, Len: int64(len(a))}}, 1<<30)
	got := src.requests()
	slices.Sort(got)
	var want []string
	for i := range 4 {
		want = append(want, fmt.Sprintf("a %d+%d", i<<20, 1<<20))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) || st.Requests != 4 {
		t.Fatalf("requests %v (%d), want 4 of 1 MiB: %v", got, st.Requests, want)
	}
}
