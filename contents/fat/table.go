package fat

import (
	"context"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/osimagefs/osimagefs/contents/node"
)

// chunkLen is the unit the FAT is read and cached in; chunks is how many
// the LRU keeps (1 MiB in all, the whole FAT of a 256 MiB FAT32 partition
// with 4 KiB clusters).
const (
	chunkLen = 4096
	chunks   = 256
)

// table reads entries of the first FAT on demand.
type table struct {
	g      geometry
	read   func(ctx context.Context, p []byte, off int64, what string) error
	chunks *lru.Cache[int64, []byte]
}

func newTable(g geometry, read func(context.Context, []byte, int64, string) error) *table {
	c, _ := lru.New[int64, []byte](chunks)
	return &table{g: g, read: read, chunks: c}
}

// byteAt returns byte i of the FAT.
func (t *table) byteAt(ctx context.Context, i int64) (byte, error) {
	if i < 0 || i >= t.g.fatLen {
		return 0, fmt.Errorf("fat: FAT byte %d: %w: beyond the FAT's %d bytes", i, node.ErrCorrupt, t.g.fatLen)
	}
	k := i / chunkLen
	b, ok := t.chunks.Get(k)
	if !ok {
		b = make([]byte, min(chunkLen, t.g.fatLen-k*chunkLen))
		if err := t.read(ctx, b, t.g.fatOff+k*chunkLen, "FAT"); err != nil {
			return 0, err
		}
		t.chunks.Add(k, b)
	}
	return b[i-k*chunkLen], nil
}

// next returns the FAT entry of cluster c: the next cluster of its chain,
// or a value at or above eoc (end of chain) or a free/bad marker.
func (t *table) next(ctx context.Context, c uint32) (uint32, error) {
	var v uint32
	switch t.g.kind {
	case 12:
		o := int64(c) + int64(c)/2
		lo, err := t.byteAt(ctx, o)
		if err != nil {
			return 0, err
		}
		hi, err := t.byteAt(ctx, o+1)
		if err != nil {
			return 0, err
		}
		v = uint32(lo) | uint32(hi)<<8
		if c&1 == 1 {
			v >>= 4
		}
		v &= 0xfff
		if v >= 0xff7 {
			v |= 0x0ffff000
		}
	case 16:
		for i := range 2 {
			b, err := t.byteAt(ctx, int64(c)*2+int64(i))
			if err != nil {
				return 0, err
			}
			v |= uint32(b) << (8 * i)
		}
		if v >= 0xfff7 {
			v |= 0x0fff0000
		}
	default:
		for i := range 4 {
			b, err := t.byteAt(ctx, int64(c)*4+int64(i))
			if err != nil {
				return 0, err
			}
			v |= uint32(b) << (8 * i)
		}
		v &= 0x0fffffff
	}
	return v, nil
}

// eoc is the first end-of-chain value, in the 28-bit form next returns
// for every FAT width; bad is the bad-cluster marker.
const (
	bad = 0x0ffffff7
	eoc = 0x0ffffff8
)

// follow returns the cluster after c in a chain, or ok false at its end.
// A free, bad or out-of-range entry in a chain is corruption.
func (t *table) follow(ctx context.Context, c uint32) (n uint32, ok bool, err error) {
	n, err = t.next(ctx, c)
	if err != nil {
		return 0, false, err
	}
	if n >= eoc {
		return 0, false, nil
	}
	if !t.g.valid(n) {
		return 0, false, fmt.Errorf("fat: cluster %d: %w: chain goes on to %#x", c, node.ErrCorrupt, n)
	}
	return n, true, nil
}

// length returns the number of clusters of the chain starting at first,
// failing on a loop (found by Brent's algorithm, in constant memory and at
// most a few times the chain's length in steps) or a broken link.
func (t *table) length(ctx context.Context, first uint32) (int64, error) {
	if !t.g.valid(first) {
		return 0, fmt.Errorf("fat: chain at cluster %d: %w: not a data cluster", first, node.ErrCorrupt)
	}
	tortoise, hare := first, first
	power, lam := int64(1), int64(0)
	n := int64(1)
	for {
		next, ok, err := t.follow(ctx, hare)
		if err != nil {
			return 0, err
		}
		if !ok {
			return n, nil
		}
		hare = next
		n++
		lam++
		if hare == tortoise {
			return 0, fmt.Errorf("fat: chain at cluster %d: %w: it loops", first, node.ErrCorrupt)
		}
		if lam == power {
			tortoise, power, lam = hare, power*2, 0
		}
		if err := ctx.Err(); err != nil && n%4096 == 0 {
			return 0, err
		}
	}
}
