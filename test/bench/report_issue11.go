package main

import (
	"fmt"

	"strings"
	"time"
)

// The report of the issue-11 measurements: 6 (boot), 7 (wide streams),
// 8 (loopback CPU) and 9 (warm reads).

// medianDur is the median of ds.
func medianDur(ds []time.Duration) time.Duration {
	var xs []float64
	for _, d := range ds {
		xs = append(xs, float64(d))
	}
	return time.Duration(median(xs))
}

func medianInt(ns []int64) int64 {
	var xs []float64
	for _, n := range ns {
		xs = append(xs, float64(n))
	}
	return int64(median(xs))
}

// limitRow is a row of a value against a fixed bound (lower is better).
func limitRow(name, unit string, v, bound float64) row {
	return row{name, fmt.Sprintf("%.2f %s", v, unit), fmt.Sprintf("%.2f %s (goal)", bound, unit), fmt.Sprintf("%.2f", v/bound), fmt.Sprintf("≤ %.2f %s", bound, unit), yes(v <= bound)}
}

// issue11Rows are the rows of 6 to 9 in the summary table.
func (b *bench) issue11Rows() []row {
	var rows []row
	res := &b.res
	gib := float64(b.cfg.size) / (1 << 30)
	if bt := res.boot.took; bt != nil {
		for _, g := range []struct {
			row  string
			want float64
		}{{"wan50", 1.35}, {"wan20", 1.2}} {
			local, prof := bt[g.row]["local"], bt[g.row]["profile"]
			if len(local) == 0 || len(prof) == 0 {
				continue
			}
			l, p := medianDur(local).Seconds(), medianDur(prof).Seconds()
			rows = append(rows, row{"6. boot with a profile, " + b.bootRowName(g.row), fmt.Sprintf("%.2f s", p), fmt.Sprintf("%.2f s (local files)", l),
				fmt.Sprintf("%.2f", p/l), fmt.Sprintf("≤ %.2f", g.want), yes(p/l <= g.want)})
			if g.row == "wan50" {
				best, bestName := 0.0, ""
				for _, c := range []string{"qemucurl", "nbdkit", "pull"} {
					if v := bt[g.row][c]; len(v) > 0 && (bestName == "" || medianDur(v).Seconds() < best) {
						best, bestName = medianDur(v).Seconds(), b.bootColName(c)
					}
				}
				if bestName != "" {
					rows = append(rows, row{"6. boot with a profile against the fastest peer, " + b.bootRowName(g.row), fmt.Sprintf("%.2f s", p), fmt.Sprintf("%.2f s (%s)", best, bestName),
						fmt.Sprintf("%.2f", p/best), "< 1.00", yes(p < best)})
				}
			}
		}
		var fetched []int64
		for _, r := range b.boot.rows {
			fetched = append(fetched, res.boot.fetched[r.key]["osimagefs"]...)
		}
		if len(fetched) > 0 {
			rows = append(rows, limitRow("6. bytes of disk.img fetched by a boot from osimagefs (fresh cache, no profile), median of all rows", "MB", float64(medianInt(fetched))/1e6, 1.1))
		}
	}
	if len(res.wide) > 0 {
		var m, c []float64
		for _, w := range res.wide {
			m, c = append(m, w.mount), append(c, w.curl)
		}
		rows = append(rows, throughputRow(fmt.Sprintf("7. wide streams: cold sequential read of %s over a WAN of %d ms each way, %.0f MB/s per connection", fmtBytes(b.cfg.wideSize), b.cfg.wideLatency.Milliseconds(), float64(b.cfg.wideRate)/1000),
			"one curl stream via the same proxy", m, c, 6))
	}
	if len(res.cpu) > 0 {
		var t, p []float64
		for _, c := range res.cpu {
			t, p = append(t, c.tables.Seconds()/gib), append(p, c.plain.Seconds()/gib)
		}
		rows = append(rows,
			limitRow("8. daemon CPU per GiB, cold sequential read, memory-only mount (--cache-dir none), loopback, with chunk tables", "s/GiB", median(t), 0.5),
			limitRow("8. the same, image without chunk tables", "s/GiB", median(p), 0.5))
	}
	if len(res.warm) > 0 {
		var m, m2, l, first, second []float64
		for _, w := range res.warm {
			m, m2, l = append(m, w.mount), append(m2, w.second), append(l, w.local)
			first, second = append(first, w.cpuFirst.Seconds()/gib), append(second, w.cpuSecond.Seconds()/gib)
		}
		rows = append(rows,
			throughputRow("9. warm read after `osimagefs fetch`: first dd bs=1M of a fresh mount, the cache's data file page cache hot", "dd of the cache's data file, hot", m, l, 0.9),
			throughputRow("9. the same, second dd through the mount", "dd of the cache's data file, hot", m2, l, 0.9),
			row{"9. daemon CPU during the first read (second read)", fmt.Sprintf("%.2f s/GiB (%.2f s/GiB)", median(first), median(second)), "0 (served by the kernel: passthrough)", "n/a", "none set", "n/a"})
	}
	return rows
}

func (b *bench) bootRowName(key string) string {
	for _, r := range bootRowDefs {
		if r.key == key {
			return r.name
		}
	}
	return key
}

func (b *bench) bootColName(key string) string {
	for _, c := range bootCols {
		if c.key == key {
			return c.name
		}
	}
	return key
}

// bootTable renders 6: the median boot time of every row and column,
// and the bytes of disk.img each column fetched, then every run.
func (b *bench) bootTable(p func(string, ...any)) {
	bs, res := &b.boot, &b.res.boot
	if res.took == nil {
		return
	}
	var head, sep []string
	for _, c := range bs.cols {
		head, sep = append(head, c.name), append(sep, "---")
	}
	p("6. Boot: QEMU (TCG) boots the guest of the e2e boot test (kernel, initramfs, 1 GiB ext4 disk.img, squashfs and ISO as virtio disks) until it prints its last marker; median of %d boots (s):\n\n", b.cfg.bootRuns)
	p("| boot | %s |\n|---|%s|\n", strings.Join(head, " | "), strings.Join(sep, "|"))
	cell := func(r, c string, f func() string) string {
		if c == "profile" && bs.profile != "" {
			return "n/a"
		}
		if len(res.took[r][c]) == 0 {
			return "-"
		}
		return f()
	}
	for _, r := range bs.rows {
		var cells []string
		for _, c := range bs.cols {
			cells = append(cells, cell(r.key, c.key, func() string { return fmt.Sprintf("%.2f s", medianDur(res.took[r.key][c.key]).Seconds()) }))
		}
		p("| %s | %s |\n", r.name, strings.Join(cells, " | "))
	}
	for _, r := range bs.rows {
		var cells []string
		for _, c := range bs.cols {
			cells = append(cells, cell(r.key, c.key, func() string {
				if c.key == "local" {
					return "-"
				}
				return fmtKB(medianInt(res.fetched[r.key][c.key]))
			}))
		}
		p("| bytes of disk.img fetched, %s | %s |\n", r.key, strings.Join(cells, " | "))
	}
	p("\n")
	if bs.profile != "" {
		p("The profile column is missing: %s.\n\n", bs.profile)
	}
	p("Every boot (s, in run order):\n\n| boot | %s |\n|---|%s|\n", strings.Join(head, " | "), strings.Join(sep, "|"))
	for _, r := range bs.rows {
		var cells []string
		for _, c := range bs.cols {
			var vs []string
			for _, d := range res.took[r.key][c.key] {
				vs = append(vs, fmt.Sprintf("%.2f", d.Seconds()))
			}
			cells = append(cells, cmpOr(strings.Join(vs, ", "), "-"))
		}
		p("| %s | %s |\n", r.key, strings.Join(cells, " | "))
	}
	p("\n")
}

// issue11Tables renders the per-run tables of 7 to 9.
func (b *bench) issue11Tables(p func(string, ...any)) {
	res := &b.res
	gib := float64(b.cfg.size) / (1 << 30)
	b.bootTable(p)
	if len(res.wide) > 0 {
		p("Per run, 7. wide streams (MB/s):\n\n| run | mount | one curl stream | ratio | blob bytes fetched / bytes read |\n|---|---|---|---|---|\n")
		for i, w := range res.wide {
			p("| %d | %.0f | %.0f | %.2f | %.3f |\n", i+1, w.mount, w.curl, w.mount/w.curl, float64(w.fetched)/float64(b.cfg.wideSize))
		}
		p("\n")
	}
	if len(res.cpu) > 0 {
		p("Per run, 8. memory-only mount on loopback (daemon CPU s/GiB, MB/s):\n\n| run | with tables | MB/s | without tables | MB/s |\n|---|---|---|---|---|\n")
		for i, c := range res.cpu {
			p("| %d | %.2f | %.0f | %.2f | %.0f |\n", i+1, c.tables.Seconds()/gib, c.tablesMBs, c.plain.Seconds()/gib, c.plainMBs)
		}
		p("\n")
	}
	if len(res.warm) > 0 {
		p("Per run, 9. warm reads (MB/s; daemon CPU s/GiB):\n\n| run | fresh mount, first dd | second dd | cache data file, hot | ratio (first) | daemon CPU, first dd | daemon CPU, second dd |\n|---|---|---|---|---|---|---|\n")
		for i, w := range res.warm {
			p("| %d | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", i+1, w.mount, w.second, w.local, w.mount/w.local, w.cpuFirst.Seconds()/gib, w.cpuSecond.Seconds()/gib)
		}
		p("\n")
	}
}

// issue11Notes says how 6 to 9 are taken.
func (b *bench) issue11Notes(p func(string, ...any)) {
	c := b.cfg
	if b.res.boot.took != nil {
		p("- 6: the image (`osimagefs push`, chunk tables) holds the e2e boot test's guest: its initramfs (test/fixture/guest.go) mounts the three disks and prints a marker file from each. Each boot starts with a dropped page cache; the time runs from the start of the column's work (mount, downloads, nbdkit start-up) to the last marker on the serial console. Columns: local files (disk.img with cache=none); `osimagefs mount --prefetch small` on a fresh cache; osimagefs with a boot profile: recorded once on loopback with `mount --record FILE`, published with `osimagefs profile push`, then a fresh cache with `--prefetch auto`; QEMU's curl block driver (`file.driver=http,file.url=BLOB-URL`) after curl fetched kernel, initramfs and cmdline; nbdkit's curl plugin per disk (`nbdkit -r -U SOCK --filter=readahead --filter=cache curl url=BLOB-URL`, QEMU over NBD) after the same curls; pull (every blob with its own curl, all at once), then a boot from the local files. The tree's disk.img is attached with cache=none as in the e2e test. Bytes of disk.img are counted by the counting proxy in front of the registry once every client has stopped (read-ahead in flight included).\n")
		for _, d := range b.boot.wanDescs {
			p("  - %s.\n", d)
		}
	}
	if b.setup.wideDesc != "" {
		p("- 7: a fresh mount (default flags, empty disk cache) reads the first %s of disk.img with `dd bs=1M`; baseline: `curl -r 0-%d` of the blob, one connection; both through %s, then the counting proxy.\n", fmtBytes(c.wideSize), c.wideSize-1, b.setup.wideDesc)
	}
	if len(b.res.cpu) > 0 {
		p("- 8: `osimagefs mount --cache-dir none` straight to the registry; dd of the whole disk.img; daemon CPU (utime + stime) from /proc/PID/stat before and after; the page cache is not dropped, so the registry's blob file stays hot. The image without tables is the same blob pushed again with `--chunk-tables=false`.\n")
	}
	if len(b.res.warm) > 0 {
		p("- 9: `osimagefs fetch` into an empty cache, a dd of the blob's data file in that cache (so it is page cache hot), then a fresh mount on it; dd of disk.img through the mount twice, each timed: the first is what passthrough serves (the mount's own page cache is empty), the second may be served from the mount's page cache; baseline: dd of the data file again, hot; daemon CPU from /proc/PID/stat during each dd through the mount (clock ticks of 10 ms).\n")
	}
}
