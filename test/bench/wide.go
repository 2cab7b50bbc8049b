package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Wide streams (issue 11, goal 4): a sequential read of -wide-size bytes
// of disk.img through a fresh mount over a WAN whose bandwidth limit
// applies to each connection, against one curl stream over the same
// proxy. Only a window of many requests in flight gets more than one
// connection's share.

// wideRun is one run of the wide-streams measurement.
type wideRun struct {
	mount, curl float64 // MB/s
	fetched     int64   // blob bytes the mount fetched
}

// prepareWide starts the per-connection-limited WAN proxy.
func (b *bench) prepareWide() error {
	w, err := startWANLimit(b.cfg.wanProxy, b.setup.cntHost, b.cfg.wideLatency, b.cfg.wideRate, true)
	if err != nil {
		return fmt.Errorf("WAN proxy of the wide streams: %w", err)
	}
	b.cl.add("wide WAN proxy", func() error { w.close(); return nil })
	b.setup.wideHost, b.setup.wideDesc = w.host, w.desc
	return nil
}

func (b *bench) runWide(ctx context.Context, i int) error {
	n := b.cfg.wideSize
	var r wideRun
	if err := b.dropCaches(ctx); err != nil {
		return err
	}
	sctx, cancel := b.stepCtx(ctx)
	t, _, err := curlGet(sctx, blobURL(b.setup.wideHost, b.setup.digest), fmt.Sprintf("0-%d", n-1), n)
	cancel()
	if err != nil {
		return err
	}
	r.curl = mbps(n, t.wall)

	cache := filepath.Join(b.work, fmt.Sprintf("cache-wide-%d", i+1))
	defer os.RemoveAll(cache)
	cnt := b.setup.counter
	before := cnt.BytesFor(b.setup.digest)
	err = b.withMount(ctx, fmt.Sprintf("wide-%d", i+1), ref(b.setup.wideHost), cache, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		t, _, err := b.ddDaemon(ctx, d, file, n)
		if err != nil {
			return err
		}
		r.mount = mbps(n, t.wall)
		return nil
	})
	if err != nil {
		return err
	}
	r.fetched = cnt.BytesFor(b.setup.digest) - before
	b.res.wide = append(b.res.wide, r)
	b.logf("  wide streams, %s over the per-connection WAN: mount %.0f MB/s, one curl stream %.0f MB/s (%.1fx); fetched %.3f bytes per byte read",
		fmtBytes(n), r.mount, r.curl, r.mount/r.curl, float64(r.fetched)/float64(n))
	return nil
}
