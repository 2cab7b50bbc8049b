package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// TestFailedReadsLogLimit: a registry outage fails every read; the log
// gets one line per blob per interval, and the next line counts the
// failed reads that were not logged.
func TestFailedReadsLogLimit(t *testing.T) {
	var buf bytes.Buffer
	r := NewRoot(&image.Tree{}, nil, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	var mu sync.Mutex
	clock := time.Unix(1_000_000, 0)
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	a := image.File{Path: "amd64/x/disk.img", Digest: digest.FromString("a")}
	b := image.File{Path: "amd64/x/kernel", Digest: digest.FromString("b")}
	outage := errors.New("HTTP 503 Service Unavailable")

	type line struct {
		Msg        string
		Digest     string
		Suppressed *int
	}
	lines := func() []line {
		var out []line
		for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if s == "" {
				continue
			}
			var l line
			if err := json.Unmarshal([]byte(s), &l); err != nil {
				t.Fatalf("log line %q: %v", s, err)
			}
			out = append(out, l)
		}
		buf.Reset()
		return out
	}
	fail := func(f image.File, n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.errno(context.Background(), "read", f, int64(i)<<20, outage)
			}()
		}
		wg.Wait()
	}

	fail(a, 1000)
	if got := lines(); len(got) != 1 || got[0].Msg != "read failed" || got[0].Digest != a.Digest.String() || got[0].Suppressed != nil {
		t.Fatalf("1000 failed reads of one blob in one interval logged %+v, want one line without a count", got)
	}
	fail(b, 3)
	if got := lines(); len(got) != 1 || got[0].Digest != b.Digest.String() {
		t.Fatalf("another blob's failures logged %+v, want one line of its own", got)
	}
	advance(failLogInterval - time.Millisecond)
	fail(a, 1)
	if got := lines(); len(got) != 0 {
		t.Fatalf("a failure within the interval logged %+v", got)
	}
	advance(time.Millisecond)
	fail(a, 1)
	got := lines()
	if len(got) != 1 || got[0].Suppressed == nil || *got[0].Suppressed != 1000 {
		t.Fatalf("after the interval: %+v, want one line counting the 1000 failed reads not logged", got)
	}
	fail(a, 1)
	if got := lines(); len(got) != 0 {
		t.Fatalf("the interval did not restart: %+v", got)
	}
}
