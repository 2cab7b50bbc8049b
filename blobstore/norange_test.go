package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/faulty"
)

// TestRangeIgnored: a server that ignores Range (a proxy that drops the
// header in front of a real registry) answers 200 with the whole blob.
// From byte 0 that is the range; past it, ReadParts fails with
// ErrRangeIgnored naming the host instead of streaming up to the range,
// the host is remembered (later reads past byte 0 send no request), and
// one warning is logged however many reads there are.
func TestRangeIgnored(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 2<<20+99, Options{})
	e.front.Inject(0, faulty.IgnoreRange())
	size := int64(len(e.data))

	t.Run("from byte 0", func(t *testing.T) {
		e.front.ResetLog()
		parts := splitParts(1<<20+5, 256<<10)
		if err := e.store.ReadParts(context.Background(), e.desc.Digest, parts, 0, func(int) {}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.Join(parts, nil), e.data[:1<<20+5]) {
			t.Fatal("wrong bytes")
		}
		if g := gets(e.front.Requests()); len(g) != 1 || g[0] != "Range ignored -> 200" {
			t.Fatalf("blob GETs %q, want one answered 200", g)
		}
		if _, err := e.read(t, e.store, 0, int(size), 10*time.Second); err != nil {
			t.Fatalf("the whole blob: %v", err)
		}
	})
	t.Run("past byte 0", func(t *testing.T) {
		e.front.ResetLog()
		start := time.Now()
		_, err := e.read(t, e.store, 1<<20+3, 70_000, 10*time.Second)
		var ri *RangeIgnoredError
		if !errors.Is(err, ErrRangeIgnored) || !errors.As(err, &ri) || ri.Host != e.front.Host() {
			t.Fatalf("err = %v, want ErrRangeIgnored from %s", err, e.front.Host())
		}
		if g := gets(e.front.Requests()); len(g) != 1 {
			t.Fatalf("blob GETs %q, want one, not retried", g)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("took %s", took)
		}
	})
	t.Run("remembered", func(t *testing.T) {
		e.front.ResetLog()
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				off := 1 + int64(i)*(size/40)
				if _, err := e.read(t, e.store, off, 4096, 10*time.Second); !errors.Is(err, ErrRangeIgnored) {
					t.Errorf("read at %d: %v, want ErrRangeIgnored", off, err)
				}
			})
		}
		wg.Wait()
		if g := gets(e.front.Requests()); len(g) != 0 {
			t.Fatalf("blob GETs %q while the host is known to ignore Range, want none", g)
		}
		// Byte 0 still reads.
		if _, err := e.read(t, e.store, 0, 4096, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})
	if n := e.log.Count("ignores Range"); n != 1 {
		t.Fatalf("%d warnings, want one:\n%s", n, e.log)
	}
	if n := e.log.Count("level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want one:\n%s", n, e.log)
	}
}

// TestNoRangeHostsForget: a host is remembered for rangeIgnoredFor, and
// warned about once, also after it is forgotten and seen again.
func TestNoRangeHostsForget(t *testing.T) {
	t.Parallel()
	var n noRangeHosts
	t0 := time.Now()
	if err := n.ignored("reg", t0); err != nil {
		t.Fatalf("unknown host: %v", err)
	}
	if !n.saw("reg", "storage", t0) {
		t.Fatal("first sight not reported as first")
	}
	tests := []struct {
		name  string
		after time.Duration
		want  bool
	}{
		{"at once", 0, true},
		{"just before", rangeIgnoredFor - time.Second, true},
		{"after", rangeIgnoredFor, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := n.ignored("reg", t0.Add(tc.after))
			var ri *RangeIgnoredError
			if got := errors.As(err, &ri); got != tc.want || got && ri.Host != "storage" {
				t.Fatalf("ignored after %s: %v, want remembered: %v", tc.after, err, tc.want)
			}
		})
	}
	if n.saw("reg", "storage", t0.Add(2*rangeIgnoredFor)) {
		t.Fatal("seen again: reported as first, would warn twice")
	}
	if err := n.ignored("reg", t0.Add(2*rangeIgnoredFor+time.Second)); err == nil {
		t.Fatal("seen again: not remembered")
	}
}

// TestStreamBlob streams a whole blob from a registry that honours Range
// and from one that ignores it, and after a cut body: fn is called again
// with the blob from byte 0.
func TestStreamBlob(t *testing.T) {
	t.Parallel()
	e := newFaultEnv(t, 3<<20+7, Options{})
	tests := []struct {
		name  string
		fault faulty.Fault
		calls int
	}{
		{"plain", faulty.Fault{}, 1},
		{"range ignored", faulty.IgnoreRange(), 1},
		{"body cut", faulty.CutBody(100_000), 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.front.Clear()
			if tc.fault.Serve != nil {
				e.front.Inject(1, tc.fault)
			}
			defer e.front.Clear()
			calls := 0
			var got []byte
			err := e.store.StreamBlob(context.Background(), e.desc.Digest, func(body io.Reader, size int64) error {
				calls++
				if size != int64(len(e.data)) {
					t.Errorf("declared size %d, want %d", size, len(e.data))
				}
				var err error
				got, err = io.ReadAll(body)
				if err == nil && len(got) < len(e.data) {
					err = io.ErrUnexpectedEOF
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls != tc.calls || !bytes.Equal(got, e.data) {
				t.Fatalf("%d calls, want %d; bytes right: %v", calls, tc.calls, bytes.Equal(got, e.data))
			}
		})
	}
	t.Run("stop early", func(t *testing.T) {
		e.front.ResetLog()
		err := e.store.StreamBlob(context.Background(), e.desc.Digest, func(body io.Reader, size int64) error {
			_, err := io.ReadFull(body, make([]byte, 10))
			return err
		})
		if err != nil || len(e.front.BlobGets()) != 1 {
			t.Fatalf("err %v after %d GETs", err, len(e.front.BlobGets()))
		}
	})
	t.Run("missing blob", func(t *testing.T) {
		err := e.store.StreamBlob(context.Background(), digest.FromString("absent"), func(io.Reader, int64) error { return nil })
		var se *StatusError
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.Code != http.StatusNotFound {
			t.Fatalf("err = %v, want not found", err)
		}
	})
}
