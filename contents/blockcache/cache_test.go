package blockcache

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestGetLoadsOnce(t *testing.T) {
	c := New(1 << 20)
	s := c.Space()
	var loads atomic.Int32
	load := func() ([]byte, error) { loads.Add(1); return []byte("block"), nil }
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			b, err := s.Get(4096, load)
			if err != nil || string(b) != "block" {
				t.Errorf("Get = %q, %v", b, err)
			}
		})
	}
	wg.Wait()
	if _, err := s.Get(4096, load); err != nil {
		t.Fatal(err)
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("decompressed %d times, want 1", n)
	}
}

func TestSpacesAreSeparate(t *testing.T) {
	c := New(1 << 20)
	a, b := c.Space(), c.Space()
	a.Get(0, func() ([]byte, error) { return []byte("a"), nil })
	got, _ := b.Get(0, func() ([]byte, error) { return []byte("b"), nil })
	if string(got) != "b" {
		t.Fatalf("space b read %q from space a", got)
	}
}

func TestBoundInBytes(t *testing.T) {
	c := New(10)
	s := c.Space()
	for off := range int64(5) {
		s.Get(off, func() ([]byte, error) { return make([]byte, 4), nil })
		if c.Bytes() > 10 {
			t.Fatalf("holds %d bytes, bound 10", c.Bytes())
		}
	}
	var loads int
	s.Get(0, func() ([]byte, error) { loads++; return make([]byte, 4), nil })
	if loads != 1 {
		t.Fatal("the oldest block was not evicted")
	}
	// A block larger than the cache is returned but not kept.
	big, _ := s.Get(99, func() ([]byte, error) { return make([]byte, 11), nil })
	if len(big) != 11 || c.Bytes() > 10 {
		t.Fatalf("big block: len %d, cache %d bytes", len(big), c.Bytes())
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	s := New(0).Space()
	boom := errors.New("boom")
	if _, err := s.Get(1, func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	b, err := s.Get(1, func() ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(b) != "ok" {
		t.Fatalf("after an error: %q, %v", b, err)
	}
	var nilCache *Cache
	b, _ = nilCache.Space().Get(1, func() ([]byte, error) { return []byte("x"), nil })
	if string(b) != "x" {
		t.Fatal("nil cache")
	}
}
