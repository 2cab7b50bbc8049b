package cache

import (
	"bytes"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestMemoryBoundedInBytes(t *testing.T) {
	const cs = 1024
	m, err := NewMemory(4*cs, cs)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("blob")
	for i := int64(0); i < 10; i++ {
		m.Add(Key{d, i}, bytes.Repeat([]byte{byte(i)}, cs))
	}
	if m.Len() != 4 || m.Capacity() != 4 {
		t.Fatalf("len %d capacity %d, want 4 and 4", m.Len(), m.Capacity())
	}
	if _, ok := m.Get(Key{d, 0}); ok {
		t.Fatal("least recently used chunk 0 is still cached")
	}
	b, ok := m.Get(Key{d, 9})
	if !ok || b[0] != 9 {
		t.Fatal("most recent chunk 9 missing or wrong")
	}
	if _, ok := m.Get(Key{digest.FromString("other"), 9}); ok {
		t.Fatal("a chunk of another blob was found under the same index")
	}
}

func TestNewMemoryRejectsBadSizes(t *testing.T) {
	for _, tc := range []struct {
		name          string
		budget, chunk int64
	}{{"zero chunk", 10, 0}, {"negative chunk", 10, -1}, {"negative budget", -1, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewMemory(tc.budget, tc.chunk); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	m, err := NewMemory(0, 1024)
	if err != nil || m.Capacity() != 1 {
		t.Fatalf("budget 0: %v, capacity %d; want one chunk", err, m.Capacity())
	}
}

func BenchmarkMemoryGetHit(b *testing.B) {
	m, _ := NewMemory(64<<20, 1<<20)
	d := digest.FromString("blob")
	for i := int64(0); i < 64; i++ {
		m.Add(Key{d, i}, make([]byte, 1<<20))
	}
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := m.Get(Key{d, int64(i % 64)}); !ok {
			b.Fatal("miss")
		}
	}
}
