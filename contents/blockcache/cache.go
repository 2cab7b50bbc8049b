package blockcache

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// DefaultBytes is the bound New uses for a size of 0 or less.
const DefaultBytes = 64 << 20

type key struct {
	space uint64
	off   int64
}

// Cache is a byte-bounded LRU of decompressed blocks. The zero value is not
// usable; a nil *Cache caches nothing.
type Cache struct {
	max    int64
	spaces atomic.Uint64
	flight singleflight.Group

	mu    sync.Mutex // guards lru and bytes
	lru   *simplelru.LRU[key, []byte]
	bytes int64
}

// New returns a cache holding at most maxBytes of blocks.
func New(maxBytes int64) *Cache {
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	c := &Cache{max: maxBytes}
	// The count bound is never reached first: bytes are.
	c.lru, _ = simplelru.NewLRU[key, []byte](1<<30, func(_ key, b []byte) { c.bytes -= int64(len(b)) })
	return c
}

// Space is one file system's part of a cache: its blocks are named by their
// offset in that file system alone.
type Space struct {
	c  *Cache
	id uint64
}

// Space returns a new, empty namespace. On a nil cache it caches nothing.
func (c *Cache) Space() Space {
	if c == nil {
		return Space{}
	}
	return Space{c: c, id: c.spaces.Add(1)}
}

// Get returns the block at off, decompressing it with load on a miss. A
// block is at most as large as the cache; load's result must not be changed
// by the caller afterwards, and what Get returns must not be changed at all.
func (s Space) Get(off int64, load func() ([]byte, error)) ([]byte, error) {
	if s.c == nil {
		return load()
	}
	k := key{s.id, off}
	if b, ok := s.c.get(k); ok {
		return b, nil
	}
	v, err, shared := s.c.flight.Do(strconv.FormatUint(s.id, 10)+":"+strconv.FormatInt(off, 10), func() (any, error) {
		if b, ok := s.c.get(k); ok {
			return b, nil
		}
		b, err := load()
		if err != nil {
			return nil, err
		}
		s.c.add(k, b)
		return b, nil
	})
	if err != nil && shared && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The load ran on another reader's context, which ended: this
		// reader's own may still be alive.
		return load()
	}
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func (c *Cache) get(k key) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(k)
}

func (c *Cache) add(k key, b []byte) {
	if int64(len(b)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.lru.Peek(k); ok {
		c.bytes -= int64(len(old))
	}
	c.lru.Add(k, b)
	c.bytes += int64(len(b))
	for c.bytes > c.max {
		c.lru.RemoveOldest()
	}
}

// Bytes is how much the cache holds now.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
