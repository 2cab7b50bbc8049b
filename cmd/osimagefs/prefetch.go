package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
)

// prefetch fetches layers in the background after mounting: with "small"
// the boot files (kernel, initramfs, cmdline, UKI), with "all" those and
// then every other layer at low priority, giving way to reads.
func prefetch(ctx context.Context, f *lazy.Fetcher, tree *image.Tree, mode string, log *slog.Logger) {
	if mode == "none" {
		return
	}
	small := map[image.Role]bool{image.RoleKernel: true, image.RoleInitramfs: true, image.RoleCmdline: true, image.RoleUKI: true}
	fill := func(file image.File, low bool) {
		start := time.Now()
		if err := f.Blob(file.Digest, file.Size).Fill(ctx, low); err != nil {
			if ctx.Err() == nil {
				log.Warn("prefetch failed; reads will fetch on demand", "path", file.Path, "digest", file.Digest, "err", err)
			}
			return
		}
		log.Debug("prefetched", "path", file.Path, "bytes", file.Size, "took", time.Since(start))
	}
	seen := map[string]bool{}
	for _, file := range tree.Files {
		if file.Lazy() && small[file.Role] && !seen[file.Digest.String()] {
			seen[file.Digest.String()] = true
			fill(file, false)
		}
	}
	if mode != "all" {
		return
	}
	for _, file := range tree.Files {
		if file.Lazy() && !seen[file.Digest.String()] {
			seen[file.Digest.String()] = true
			fill(file, true)
		}
	}
}
