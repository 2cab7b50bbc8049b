package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
)

// prefetchHelp is the help of --prefetch.
const prefetchHelp = `after mounting, fetch in the background: auto (the image's boot profile, if it has one (see osimagefs profile), else as small), small (what a boot needs: kernel, initramfs, cmdline), all (those, then every layer, giving way to reads), none, or files joined by +: small+uki, kernel+disk (kernel, initramfs, cmdline, uki, disk, squashfs, iso)`

// prefetchPlan is what --prefetch asks for: the roles fetched first, and
// whether every other layer follows at low priority; with auto, an
// image's boot profile instead of those, where it has one.
type prefetchPlan struct {
	roles map[image.Role]bool
	all   bool
	auto  bool
}

// prefetchRoles names the roles --prefetch accepts.
var prefetchRoles = map[string]image.Role{
	"kernel": image.RoleKernel, "initramfs": image.RoleInitramfs, "cmdline": image.RoleCmdline,
	"uki": image.RoleUKI, "disk": image.RoleDisk, "squashfs": image.RoleSquashfs, "iso": image.RoleISO,
}

// parsePrefetch parses a --prefetch value.
func parsePrefetch(s string) (prefetchPlan, error) {
	p := prefetchPlan{roles: map[image.Role]bool{}}
	if s == "none" {
		return p, nil
	}
	for _, tok := range strings.Split(s, "+") {
		switch tok {
		case "small", "all", "auto":
			p.roles[image.RoleKernel], p.roles[image.RoleInitramfs], p.roles[image.RoleCmdline] = true, true, true
			p.all = p.all || tok == "all"
			p.auto = p.auto || tok == "auto"
		default:
			r, ok := prefetchRoles[tok]
			if !ok {
				return p, usageError{fmt.Errorf("--prefetch %q: %q is not one of auto, small, all, none, kernel, initramfs, cmdline, uki, disk, squashfs, iso (join several with +)", s, tok)}
			}
			p.roles[r] = true
		}
	}
	return p, nil
}

// prefetch fetches layers in the background after mounting: first those
// of the plan's roles, in tree order, then (with all) every other layer at
// low priority, giving way to reads.
func prefetch(ctx context.Context, f *lazy.Fetcher, tree *image.Tree, plan prefetchPlan, log *slog.Logger) {
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
		if file.Lazy() && plan.roles[file.Role] && !seen[file.Digest.String()] {
			seen[file.Digest.String()] = true
			fill(file, false)
		}
	}
	if !plan.all {
		return
	}
	for _, file := range tree.Files {
		if file.Lazy() && !seen[file.Digest.String()] {
			seen[file.Digest.String()] = true
			fill(file, true)
		}
	}
}
