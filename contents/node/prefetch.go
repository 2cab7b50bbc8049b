package node

import (
	"context"
	"io"

	"golang.org/x/sync/errgroup"
)

// Range is a region of a ReaderAt.
type Range struct{ Off, Len int64 }

// prefetchPiece is the most one prefetch read asks for at once; the lazy
// reader below splits it into its own requests.
const prefetchPiece = 4 << 20

// Prefetch reads the ranges in parallel and throws the bytes away, so that
// the reader's cache holds them when a format parses them one small read
// at a time. It is best effort: errors are left for the parse to meet.
func Prefetch(ctx context.Context, r ReaderAt, ranges []Range) {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, rg := range ranges {
		for off := rg.Off; off < rg.Off+rg.Len; off += prefetchPiece {
			n := min(prefetchPiece, rg.Off+rg.Len-off)
			g.Go(func() error {
				buf := make([]byte, n)
				if _, err := r.ReadAt(ctx, buf, off); err != nil && err != io.EOF {
					return err
				}
				return nil
			})
		}
	}
	_ = g.Wait()
}
