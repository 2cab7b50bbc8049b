package lazy

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Blob is one blob read lazily through a Fetcher.
type Blob struct {
	f      *Fetcher
	digest digest.Digest
	size   int64
}

// Size is the blob's size from its descriptor.
func (b *Blob) Size() int64 { return b.size }

// Digest names the blob.
func (b *Blob) Digest() digest.Digest { return b.digest }

// ReadAt reads len(p) bytes at off, fetching the missing chunks (in
// parallel when there are several). Like io.ReaderAt it returns io.EOF when
// fewer than len(p) bytes remain; on any other error n is 0. It is safe for
// concurrent use.
func (b *Blob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", b.digest, off)
	}
	if off >= b.size || len(p) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.size-off)
	cs := b.f.opts.ChunkSize
	first, last := span(off, n, cs)
	copyChunk := func(i int64, c []byte) {
		cOff := i * cs
		lo := max(off, cOff)
		hi := min(off+n, cOff+int64(len(c)))
		copy(p[lo-off:hi-off], c[lo-cOff:hi-cOff])
	}
	if first == last {
		c, err := b.f.chunk(ctx, b.digest, b.size, first)
		if err != nil {
			return 0, err
		}
		copyChunk(first, c)
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(b.f.opts.Parallel)
		for i := first; i <= last; i++ {
			g.Go(func() error {
				c, err := b.f.chunk(gctx, b.digest, b.size, i)
				if err != nil {
					return err
				}
				copyChunk(i, c)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}
