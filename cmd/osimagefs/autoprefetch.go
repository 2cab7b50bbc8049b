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

// profiles is what findProfiles found: the ranges of the images that have
// a boot profile, and the images without one.
type profiles struct {
	ranges    []lazy.ReplayRange
	referrers []string
	without   []image.Image
}

// findProfiles looks up the boot profile of each image of the tree, for
// --prefetch auto; a profile that is refused is logged and its image
// counts as one without. It runs while the mount comes up (the referrers
// listing is shared with the chunk tables), so that the replay can start
// as soon as the mount serves. ok is false when ctx ended first.
func findProfiles(ctx context.Context, src profile.Source, tree *image.Tree, log *slog.Logger) (p profiles, ok bool) {
	for _, img := range tree.Images {
		found, err := profile.Find(ctx, src, img)
		if err != nil {
			if ctx.Err() != nil {
				return p, false
			}
			log.Warn("boot profile not used; prefetching the small files instead", "image", img.Dir, "err", err)
		}
		if found == nil {
			p.without = append(p.without, img)
			continue
		}
		sizes := profile.Layers(img)
		for _, e := range found.Entries {
			p.ranges = append(p.ranges, lazy.ReplayRange{Digest: e.Digest, Size: sizes[e.Digest], Off: e.Off, Len: e.Len})
		}
		p.referrers = append(p.referrers, img.Dir+"="+found.Referrer.String())
		log.Info("boot profile found", "image", img.Dir, "referrer", found.Referrer, "entries", len(found.Entries), "bytes", profile.Bytes(found.Entries))
	}
	return p, true
}

// lookupProfiles starts findProfiles for --prefetch auto and returns what
// waits for its outcome; nil without auto.
func lookupProfiles(ctx context.Context, src profile.Source, tree *image.Tree, plan prefetchPlan, log *slog.Logger) func() (profiles, bool) {
	if !plan.auto {
		return nil
	}
	type outcome struct {
		p  profiles
		ok bool
	}
	ch := make(chan outcome, 1)
	go func() {
		p, ok := findProfiles(ctx, src, tree, log)
		ch <- outcome{p, ok}
	}()
	return func() (profiles, bool) {
		o := <-ch
		return o.p, o.ok
	}
}

// startPrefetch runs --prefetch after mounting. With auto (found is
// lookupProfiles'), each image of the tree that has a boot profile gets it
// replayed (in tree order, all of them together bounded by budget, the
// cache's size); the images without one, or whose profile is refused, get
// the plan's roles, as small would.
func startPrefetch(ctx context.Context, f *lazy.Fetcher, found func() (profiles, bool), tree *image.Tree, plan prefetchPlan, budget int64, log *slog.Logger) {
	if found == nil {
		prefetch(ctx, f, tree, plan, log)
		return
	}
	p, ok := found()
	if !ok || ctx.Err() != nil {
		return
	}
	if len(p.ranges) > 0 {
		start := time.Now()
		st := f.Replay(ctx, p.ranges, budget)
		if ctx.Err() != nil {
			return
		}
		args := []any{"profiles", strings.Join(p.referrers, " "), "requests", st.Requests, "bytes", st.Bytes, "cached", st.Skipped, "took", time.Since(start).Round(time.Millisecond)}
		if st.Limited {
			log.Warn("boot profile replayed in part: it is larger than the cache", append(args, "budget", budget)...)
		} else {
			log.Info("boot profile replayed", args...)
		}
	}
	if len(p.without) > 0 {
		var dirs []string
		for _, img := range p.without {
			dirs = append(dirs, img.Dir)
		}
		log.Info("no boot profile to replay; prefetching the small files", "images", strings.Join(dirs, " "))
		prefetch(ctx, f, treeOf(tree, p.without), plan, log)
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
