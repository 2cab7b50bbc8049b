package cache

import (
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// Memory is an in-memory LRU of chunks, bounded in bytes. It is safe for
// concurrent use.
type Memory struct {
	lru       *lru.Cache[Key, []byte]
	chunkSize int64
	capacity  int
}

// NewMemory makes a cache holding at most budget bytes of chunks of
// chunkSize bytes (at least one chunk). A budget of 0 holds one chunk.
func NewMemory(budget, chunkSize int64) (*Memory, error) {
	if chunkSize <= 0 {
		return nil, fmt.Errorf("memory cache: chunk size %d must be positive", chunkSize)
	}
	if budget < 0 {
		return nil, fmt.Errorf("memory cache: budget %d must not be negative", budget)
	}
	entries := max(1, budget/chunkSize)
	c, err := lru.New[Key, []byte](int(min(entries, 1<<30)))
	if err != nil {
		return nil, fmt.Errorf("memory cache of %d entries: %w", entries, err)
	}
	return &Memory{lru: c, chunkSize: chunkSize, capacity: int(min(entries, 1<<30))}, nil
}

// Get returns the chunk and true if it is cached. The slice is shared.
func (m *Memory) Get(k Key) ([]byte, bool) { return m.lru.Get(k) }

// Add stores a chunk, evicting the least recently used ones beyond the
// budget. The cache keeps b: the caller must not modify it afterwards.
func (m *Memory) Add(k Key, b []byte) { m.lru.Add(k, b) }

// Len is the number of chunks held.
func (m *Memory) Len() int { return m.lru.Len() }

// Capacity is the most chunks the cache holds.
func (m *Memory) Capacity() int { return m.capacity }

// RemoveBlob drops every chunk of blob d.
func (m *Memory) RemoveBlob(d digest.Digest) {
	for _, k := range m.lru.Keys() {
		if k.Digest == d {
			m.lru.Remove(k)
		}
	}
}
