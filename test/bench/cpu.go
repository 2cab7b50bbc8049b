package main

import (
	"context"
	"fmt"
	"time"
)

// Loopback CPU (issue 11, goal 4): the daemon's CPU-seconds per GiB for a
// cold sequential read of disk.img through a memory-only mount
// (--cache-dir none) straight to the registry on loopback, the registry's
// blob file left in the page cache, with the image's chunk tables (every
// piece checked) and without them (an image of the same blob pushed with
// --chunk-tables=false).

// notablesTag is the tag of the image without chunk tables.
const notablesTag = "notables"

// cpuRun is one run of the loopback CPU measurement.
type cpuRun struct {
	tables, plain       time.Duration // daemon CPU for the whole read
	tablesMBs, plainMBs float64
}

// prepareCPU pushes the image without chunk tables.
func (b *bench) prepareCPU(ctx context.Context) error {
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	_, err := b.osimagefs(sctx, "push", "--quiet", "--plain-http", "--chunk-tables=false", b.setup.regHost+"/"+repo+":"+notablesTag,
		"--arch", "amd64", "--variant", "bench", "--disk", b.setup.local)
	return err
}

func (b *bench) runCPU(ctx context.Context, i int) error {
	var r cpuRun
	for _, v := range []struct {
		tag  string
		cpu  *time.Duration
		rate *float64
	}{{tag, &r.tables, &r.tablesMBs}, {notablesTag, &r.plain, &r.plainMBs}} {
		name := fmt.Sprintf("cpu-%s-%d", v.tag, i+1)
		err := b.withMount(ctx, name, b.setup.regHost+"/"+repo+":"+v.tag, "none", func(d *daemon, file string) error {
			t, cpu, err := b.ddDaemon(ctx, d, file, b.cfg.size)
			if err != nil {
				return err
			}
			*v.cpu, *v.rate = cpu, mbps(b.cfg.size, t.wall)
			return nil
		})
		if err != nil {
			return err
		}
	}
	b.res.cpu = append(b.res.cpu, r)
	gib := float64(b.cfg.size) / (1 << 30)
	b.logf("  loopback CPU, memory-only mount: with tables %.2f s/GiB (%.0f MB/s), without %.2f s/GiB (%.0f MB/s)",
		r.tables.Seconds()/gib, r.tablesMBs, r.plain.Seconds()/gib, r.plainMBs)
	return nil
}
