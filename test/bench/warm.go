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
// with the whole blob, a fresh mount on that cache serves it (by FUSE
// passthrough where the kernel allows it), and dd reads the file twice;
// the second, page cache hot, is timed against a second dd of the cache's
// own data file, also hot, with the daemon's CPU time during it.

// warmRun is one run of the warm-read measurement.
type warmRun struct {
	mount, local float64       // MB/s, the second (hot) dd
	cpuFirst     time.Duration // daemon CPU during the first dd through the mount
	cpuHot       time.Duration // and during the second
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
	err = b.withMount(ctx, fmt.Sprintf("warm-hot-%d", i+1), ref(b.setup.regHost), cache, func(d *daemon, file string) error {
		_, cpu, err := b.ddDaemon(ctx, d, file, size)
		if err != nil {
			return err
		}
		r.cpuFirst = cpu
		t, cpu, err := b.ddDaemon(ctx, d, file, size)
		if err != nil {
			return err
		}
		r.mount, r.cpuHot = mbps(size, t.wall), cpu
		return nil
	})
	if err != nil {
		return err
	}
	for range 2 {
		sctx, cancel := b.stepCtx(ctx)
		t, err := ddReadPrefix(sctx, data, size)
		cancel()
		if err != nil {
			return err
		}
		r.local = mbps(size, t.wall)
	}
	b.res.warm = append(b.res.warm, r)
	b.logf("  warm, page cache hot: mount %.0f MB/s (daemon CPU %.2f s, first read %.2f s), cache data file %.0f MB/s (%.2fx)",
		r.mount, r.cpuHot.Seconds(), r.cpuFirst.Seconds(), r.local, r.mount/r.local)
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
