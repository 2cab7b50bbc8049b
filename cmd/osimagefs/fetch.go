package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/source"
)

// fetchFlags are the flags of the fetch command; those it shares with
// mount have mount's defaults, so that a fetch fills the cache a default
// mount reads.
type fetchFlags struct {
	remote    remoteFlags
	chunkSize sizeFlag
	cacheDir  string
	cacheSize sizeFlag
	parallel  int
	verify    string
	quiet     bool
}

// fetchCacheDirHelp is cacheDirHelp without "none", which has nothing to
// fill.
const fetchCacheDirHelp = `disk cache directory to fill, that of the mounts that will read it ` +
	`(default: ` + rootCacheDir + ` for root, else $XDG_CACHE_HOME/osimagefs, else $HOME/.cache/osimagefs)`

// fetchMemory is the memory cache of a fetch: chunks only pass through it
// on their way to disk.
const fetchMemory = 16 << 20

func newFetchCmd(g *globalFlags) *cobra.Command {
	f := &fetchFlags{chunkSize: lazy.DefaultChunkSize, cacheSize: 10 << 30}
	c := &cobra.Command{
		Use:   "fetch [flags] REFERENCE [PATH...]",
		Short: "Fill the disk cache with an image's layers ahead of time",
		Long: `fetch resolves REFERENCE and brings the layers it selects into the disk
cache (--cache-dir), so that a later mount on the same cache reads them
without fetching anything: a host is ready before its VMs start.

PATH selects files as the mount shows them (amd64/virtualization/disk.img)
or directories of them (amd64); without PATH every layer of the selected
platforms (--platform) is fetched. Chunks already in the cache are not
fetched again. Each layer is verified against its digest once complete.
Use the --chunk-size of the mounts that will read the cache (the default
is the same as mount's).

Progress goes to stderr: a bar per layer in flight on a terminal, else a
line per layer as it completes (none with --quiet). A summary goes to
stdout. SIGINT (Ctrl-C) or SIGTERM stops it, keeping every chunk fetched
so far: a second run fetches only what is missing.

Exit status 0 only if every selected layer is complete and verified in
the cache.

` + referenceHelp + ` A fetch from a layout fills the cache all the same
(its default --cache-dir is mount's usual one).`,
		Example: `  # everything, before the VMs start
  osimagefs fetch registry.example.com/os/gardenlinux:1.0

  # only what the amd64 VMs boot from, into a given cache
  osimagefs fetch --platform linux/amd64 --cache-dir /var/cache/osimagefs \
      registry.example.com/os/gardenlinux:1.0 amd64/virtualization/disk.img amd64/virtualization/kernel`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageError{fmt.Errorf("%s takes REFERENCE and optional PATHs, got no argument (see --help)", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFetch(cmd.Context(), cmd, g, f, args[0], args[1:])
		},
	}
	fl := c.Flags()
	f.remote.register(fl)
	fl.Var(&f.chunkSize, "chunk-size", "unit of fetching and caching, 4KiB to 64MiB (that of the mounts that read the cache)")
	fl.StringVar(&f.cacheDir, "cache-dir", "", fetchCacheDirHelp)
	fl.Var(&f.cacheSize, "cache-size", "most bytes the disk cache holds (least recently used goes first)")
	fl.IntVar(&f.parallel, "parallel", lazy.DefaultParallel, "most range requests in flight to the registry, over all layers")
	registerVerify(fl, &f.verify)
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress on stderr")
	return c
}

// layerRun is the fetch of one layer: what was cached before, what came
// from the registry, how it ended.
type layerRun struct {
	layer       fetchLayer
	cached      int64        // bytes on disk before
	fetched     atomic.Int64 // bytes from the registry
	started     bool
	took        time.Duration
	err         error
	interrupted bool
}

func runFetch(ctx context.Context, cmd *cobra.Command, g *globalFlags, f *fetchFlags, refArg string, paths []string) error {
	logOut := &switchWriter{w: os.Stderr}
	log, err := g.loggerTo(logOut)
	if err != nil {
		return err
	}
	ref, err := source.Parse(refArg)
	if err != nil {
		return err
	}
	platforms, err := f.remote.parsePlatforms()
	if err != nil {
		return err
	}
	if f.parallel < 1 {
		return usageError{fmt.Errorf("--parallel %d: must be at least 1", f.parallel)}
	}
	verify, err := parseVerify(f.verify)
	if err != nil {
		return err
	}
	if f.cacheDir == "none" {
		return usageError{errors.New("--cache-dir none: fetch fills the disk cache, and there is none to fill")}
	}
	disk, err := openDiskCache(f.cacheDir, int64(f.chunkSize), int64(f.cacheSize), log)
	if err != nil {
		return err
	}
	defer disk.Close()

	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts, err := f.remote.storeOptions(log)
	if err != nil {
		return err
	}
	// A blob a mirror is still filling is read from it whole, so that
	// the mirror is left warm (Distribution 3 stops a fill whose client
	// hangs up).
	opts.WholeBlobs = true
	src, err := openSource(rctx, ref, opts, log)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	tree, err := src.Resolve(rctx, platforms)
	if err != nil {
		return err
	}
	for _, w := range tree.Warnings {
		log.Warn(w)
	}
	layers, err := selectLayers(tree, paths)
	if err != nil {
		return err
	}
	verifier, err := newVerifier(rctx, verify, int64(f.chunkSize), src, tree, log)
	if err != nil {
		return err
	}
	var total int64
	for _, l := range layers {
		total += l.Size
	}
	if total > disk.Limit() {
		return usageError{fmt.Errorf("the %d layers selected hold %s, more than the cache holds (--cache-size %s): give a larger --cache-size or fewer PATHs",
			len(layers), bytesSize(total), bytesSize(disk.Limit()))}
	}

	runs := make([]*layerRun, len(layers))
	byDigest := map[digest.Digest]*layerRun{}
	width := 0
	for i, l := range layers {
		runs[i] = &layerRun{layer: l}
		byDigest[l.Digest] = runs[i]
		width = max(width, len(printable(l.Label()))+1)
	}
	var prog layerProgress = &lineLayers{w: io.Discard}
	switch stderr := cmd.ErrOrStderr(); {
	case f.quiet:
	case isTerminal(stderr):
		bars := newBarLayers(stderr, width)
		logOut.set(bars.p)
		defer logOut.set(os.Stderr)
		prog = bars
	default:
		prog = &lineLayers{w: stderr}
	}

	// Chunks pass through memory on their way to disk: those in flight
	// (at most --parallel requests of maxRequest bytes) and a small LRU.
	// The Go runtime is held near that, as a mount is.
	const maxRequest = lazy.DefaultMaxRequest
	chunk := int64(f.chunkSize)
	memSize := max(fetchMemory, 2*chunk)
	if limit, ok := memoryLimit(os.Getenv("GOMEMLIMIT"), int64(f.parallel)*max(chunk, maxRequest)+memSize); ok {
		debug.SetMemoryLimit(limit)
	}
	mem, err := cache.NewMemory(memSize, chunk)
	if err != nil {
		return usageError{err}
	}
	fetcher, err := lazy.NewFetcher(src, mem, lazy.Options{
		ChunkSize:  chunk,
		MaxRequest: maxRequest,
		Parallel:   f.parallel,
		Logger:     log,
		Disk:       disk,
		Integrity:  verifier,
		Host:       info.Name,
		CheckFirst: info.Local,
		OnFetch: func(d digest.Digest, n int64) {
			if r := byDigest[d]; r != nil {
				r.fetched.Add(n)
				prog.Fetched(r, n)
			}
		},
	})
	if err != nil {
		return usageError{err}
	}

	start := time.Now()
	warmAll(ctx, fetcher, disk, runs, f.parallel, chunk, prog)
	fetcher.Close() // the chunks fetched are on disk
	prog.Close()
	took := time.Since(start)
	// A layer is done only if it is still complete and verified now: a
	// later layer may have evicted an earlier one's chunks.
	for _, r := range runs {
		if r.err == nil && r.started && r.layer.Size > 0 && !disk.Verified(r.layer.Digest) {
			r.err = errors.New("evicted from the cache while the others were fetched (a larger --cache-size, or fewer PATHs)")
		}
	}
	if err := printFetchSummary(cmd.OutOrStdout(), runs, took); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fetch stopped; run it again to fetch the rest: %w", err)
	}
	var errs []error
	for _, r := range runs {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.layer.Label(), r.err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d layers not in the cache: %w", len(errs), len(runs), errors.Join(errs...))
	}
	return nil
}

// warmAll brings the layers into the disk cache, up to parallel at once
// (their requests share the fetcher's parallel slots), and records how
// each went. It starts no layer once ctx has ended.
func warmAll(ctx context.Context, fetcher *lazy.Fetcher, disk *cache.Disk, runs []*layerRun, parallel int, chunk int64, prog layerProgress) {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, r := range runs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.cached = cachedBytes(disk, r.layer, chunk)
			r.started = true
			prog.Start(r)
			t0 := time.Now()
			r.err = fetcher.Blob(r.layer.Digest, r.layer.Size).Warm(ctx)
			r.took = time.Since(t0)
			r.interrupted = r.err != nil && ctx.Err() != nil
			prog.Done(r)
		}()
	}
	wg.Wait()
}

// cachedBytes counts the bytes of layer l on disk.
func cachedBytes(disk *cache.Disk, l fetchLayer, chunk int64) int64 {
	var n int64
	for i := int64(0); i*chunk < l.Size; i++ {
		if disk.Has(cache.Key{Digest: l.Digest, Index: i}) {
			n += min(chunk, l.Size-i*chunk)
		}
	}
	return n
}

// state is how the layer's fetch ended, in a word.
func (r *layerRun) state() string {
	switch {
	case !r.started:
		return "not started"
	case r.interrupted:
		return "interrupted"
	case r.err != nil:
		return "failed"
	}
	return "complete"
}

// line reports the layer's end on one line.
func (r *layerRun) line() string {
	name := printable(r.layer.Label())
	size, fetched, cached := bytesSize(r.layer.Size), bytesSize(r.fetched.Load()), bytesSize(r.cached)
	took := r.took.Round(time.Millisecond)
	switch r.state() {
	case "interrupted":
		return fmt.Sprintf("interrupted %s: %s fetched, %s were cached already, of %s", name, fetched, cached, size)
	case "failed":
		return fmt.Sprintf("failed %s: %s", name, oneLine(r.err))
	}
	return fmt.Sprintf("complete %s: %s, %s fetched, %s cached already, in %s, verified", name, size, fetched, cached, took)
}
