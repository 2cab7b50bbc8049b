package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Warm reads (issue 11, goal 3): `osimagefs fetch` fills a disk cache
// with the whole blob and a dd of the cache's data file makes it page
// cache hot; a fresh mount on that cache serves it (by FUSE passthrough
// where the kernel allows it), and dd reads the file through it twice:
// the first read is what passthrough serves (the mount's own page cache
// is still empty), the second may come from the mount's page cache. Both
// are timed against a dd of the hot data file, with the daemon's CPU time.

// warmRun is one run of the warm-read measurement.
type warmRun struct {
	mount, second, local float64       // MB/s: first and second dd through the mount, dd of the data file
	cpuFirst, cpuSecond  time.Duration // daemon CPU during the dds through the mount
}

func (b *bench) runWarm(ctx context.Context, i int) error {
	size := b.cfg.size
	cache := filepath.Join(b.work, fmt.Sprintf("cache-warm-%d", i+1))
	defer os.RemoveAll(cache)
	sctx, cancel := b.stepCtx(ctx)
	_, err := b.osimagefs(sctx, "fetch", "--plain-http", "--cache-dir", cache, ref(b.setup.regHost))
	cancel()
	if err != nil {
		return err
	}
	data, err := cacheDataFile(cache, b.setup.digest, size)
	if err != nil {
		return err
	}
	var r warmRun
	sctx, cancel = b.stepCtx(ctx)
	_, err = ddReadPrefix(sctx, data, size) // the data file, page cache hot from now on
	cancel()
	if err != nil {
		return err
	}
	err = b.withMount(ctx, fmt.Sprintf("warm-hot-%d", i+1), ref(b.setup.regHost), cache, func(d *daemon, file string) error {
		t, cpu, err := b.ddDaemon(ctx, d, file, size)
		if err != nil {
			return err
		}
		r.mount, r.cpuFirst = mbps(size, t.wall), cpu
		if t, cpu, err = b.ddDaemon(ctx, d, file, size); err != nil {
			return err
		}
		r.second, r.cpuSecond = mbps(size, t.wall), cpu
		return nil
	})
	if err != nil {
		return err
	}
	sctx, cancel = b.stepCtx(ctx)
	t, err := ddReadPrefix(sctx, data, size)
	cancel()
	if err != nil {
		return err
	}
	r.local = mbps(size, t.wall)
	b.res.warm = append(b.res.warm, r)
	b.logf("  warm, page cache hot: fresh mount %.0f MB/s (daemon CPU %.2f s), again %.0f MB/s (%.2f s), cache data file %.0f MB/s (%.2fx)",
		r.mount, r.cpuFirst.Seconds(), r.second, r.cpuSecond.Seconds(), r.local, r.mount/r.local)
	return nil
}

// cacheDataFile finds the file of the disk cache under dir holding the
// blob digest whole: a file of size bytes named data under a directory
// named after the digest's hex (the cache's layout is its own business).
func cacheDataFile(dir, digest string, size int64) (string, error) {
	hex := digest[strings.IndexByte(digest, ':')+1:]
	var found string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || found != "" {
			return err
		}
		if strings.Contains(p, hex) {
			if st, err := e.Info(); err == nil && st.Size() == size && st.Mode().IsRegular() {
				found = p
			}
		}
		return nil
	})
	if err == nil && found == "" {
		err = fmt.Errorf("no file of %d bytes for %s under %s", size, digest, dir)
	}
	return found, err
}
