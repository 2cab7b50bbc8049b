package layout

import (
	"context"
	"fmt"

	"github.com/osimagefs/osimagefs/image"
)

// Resolve builds the tree of the image the reference named, from its
// documents (image.Resolve checks them against their digests), and checks
// that the blob file of every layer in it is there with its descriptor's
// size. platforms, when not empty, keeps only the index entries matching
// one of them.
func (l *Layout) Resolve(ctx context.Context, platforms []image.Platform) (*image.Tree, error) {
	raw, mt, err := l.Manifest(ctx, l.top)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", l.top.Digest, err)
	}
	t, err := image.Resolve(ctx, l, image.Top{Digest: l.top.Digest, MediaType: mt, Raw: raw}, platforms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.dir, err)
	}
	for _, f := range t.Files {
		if !f.Lazy() {
			continue
		}
		if err := l.CheckFile(f.Digest, f.Size); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
	}
	return t, nil
}
