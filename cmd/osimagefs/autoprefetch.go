package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/profile"
)

// startPrefetch runs --prefetch after mounting. With auto, each image of
// the tree that has a boot profile gets it replayed (in tree order, all
// of them together bounded by budget, the cache's size); the images
// without one, or whose profile is refused (with a warning), get the
// plan's roles, as small would.
func startPrefetch(ctx context.Context, f *lazy.Fetcher, src profile.Source, tree *image.Tree, plan prefetchPlan, budget int64, log *slog.Logger) {
	if !plan.auto {
		prefetch(ctx, f, tree, plan, log)
		return
	}
	var ranges []lazy.ReplayRange
	var without []image.Image
	var referrers []string
	for _, img := range tree.Images {
		found, err := profile.Find(ctx, src, img)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("boot profile not used; prefetching the small files instead", "image", img.Dir, "err", err)
		}
		if found == nil {
			without = append(without, img)
			continue
		}
		sizes := profile.Layers(img)
		for _, e := range found.Entries {
			ranges = append(ranges, lazy.ReplayRange{Digest: e.Digest, Size: sizes[e.Digest], Off: e.Off, Len: e.Len})
		}
		referrers = append(referrers, img.Dir+"="+found.Referrer.String())
		log.Info("boot profile found", "image", img.Dir, "referrer", found.Referrer, "entries", len(found.Entries), "bytes", profile.Bytes(found.Entries))
	}
	if len(ranges) > 0 {
		start := time.Now()
		st := f.Replay(ctx, ranges, budget)
		if ctx.Err() != nil {
			return
		}
		args := []any{"profiles", strings.Join(referrers, " "), "requests", st.Requests, "bytes", st.Bytes, "cached", st.Skipped, "took", time.Since(start).Round(time.Millisecond)}
		if st.Limited {
			log.Warn("boot profile replayed in part: it is larger than the cache", append(args, "budget", budget)...)
		} else {
			log.Info("boot profile replayed", args...)
		}
	}
	if len(without) > 0 {
		var dirs []string
		for _, img := range without {
			dirs = append(dirs, img.Dir)
		}
		log.Info("no boot profile to replay; prefetching the small files", "images", strings.Join(dirs, " "))
		prefetch(ctx, f, treeOf(tree, without), plan, log)
	}
}

// treeOf is tree with only the files of imgs.
func treeOf(tree *image.Tree, imgs []image.Image) *image.Tree {
	sub := &image.Tree{Digest: tree.Digest, Images: imgs}
	for _, file := range tree.Files {
		for _, img := range imgs {
			if strings.HasPrefix(file.Path, img.Dir+"/") {
				sub.Files = append(sub.Files, file)
				break
			}
		}
	}
	return sub
}
