// Command bench measures osimagefs against plain HTTP and local-disk
// baselines, side by side in one run, and writes the results to
// BENCHMARKS.md. It needs root (FUSE mounts, drop_caches) and is run by
// `make bench` (scripts/bench.sh); for a quick run:
//
//	go build -o bin/osimagefs ./cmd/osimagefs && go run ./test/bench -size 256MiB -runs 1
//
// What it does: starts a real CNCF Distribution registry in-process, writes
// a pseudo-random file (ChaCha8) of -size bytes, pushes it as the disk.img
// of an image with `osimagefs push`, then for each of -runs runs measures
//
//  1. cold sequential dd of disk.img through a fresh mount (empty
//     --cache-dir, page cache dropped) vs curl GET of the blob;
//  2. the re-read from the disk cache by a second mount on the same
//     --cache-dir vs dd of the local copy, both after dropping caches;
//  3. -reads random 4 KiB preads through a fresh mount vs single 4 KiB
//     curl range requests, and the blob bytes fetched per read (counting
//     proxy between mount and registry);
//  4. 1 and 3 again through an emulated WAN (toxiproxy: latency each way
//     and a link-wide bandwidth limit);
//  5. the daemon's peak RSS (VmHWM) during 1 vs 128 MiB (default flags;
//     --memory-cache + 64 MiB when -mount-flags sets it);
//  6. QEMU booting the e2e boot test's guest from local files, osimagefs
//     (fresh cache; with a boot profile), QEMU's curl driver, nbdkit's
//     curl plugin and pull-then-boot, over loopback and two WANs limited
//     per connection (boot.go);
//  7. a sequential read through a mount over a per-connection-limited WAN
//     vs one curl stream (wide.go);
//  8. the daemon's CPU per GiB of a memory-only mount on loopback, with
//     and without chunk tables (cpu.go);
//  9. warm reads of a blob `osimagefs fetch` put in the cache vs its data
//     file, page cache hot (warm.go).
//
// Every mount, proxy, registry and temporary file is torn down on exit,
// error or SIGINT/SIGTERM; every step is bounded by -step-timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	units "github.com/docker/go-units"
)

// config is the command line.
type config struct {
	size          int64
	runs          int
	reads         int
	curlRuns      int
	bin           string
	out           string
	command       string
	mountFlags    []string
	mountLogLevel string
	work          string
	keep          bool
	stepTimeout   time.Duration
	only          map[string]bool
	wanLatency    time.Duration
	wanRate       int64
	wanProxy      string
	seed          uint64
	cpuProfiles   string
	dropCaches    bool
	bootRuns      int
	bootRows      map[string]bool
	bootCols      map[string]bool
	mediaCache    string
	wideSize      int64
	wideLatency   time.Duration
	wideRate      int64
}

type sizeValue struct{ p *int64 }

func (s sizeValue) String() string {
	if s.p == nil {
		return ""
	}
	return units.BytesSize(float64(*s.p))
}

func (s sizeValue) Set(v string) error {
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		return fmt.Errorf("%q is not a size (use e.g. 256MiB, 1GiB)", v)
	}
	*s.p = n
	return nil
}

func parseFlags(args []string) (*config, error) {
	c := &config{size: 1 << 30}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Var(sizeValue{&c.size}, "size", "size of disk.img (e.g. 256MiB, 1GiB)")
	fs.IntVar(&c.runs, "runs", 3, "runs of every measurement (medians are reported)")
	fs.IntVar(&c.reads, "reads", 1000, "random 4 KiB reads per run")
	fs.IntVar(&c.curlRuns, "curl-runs", 20, "4 KiB curl range requests per run (their median is the baseline)")
	fs.StringVar(&c.bin, "bin", "bin/osimagefs", "the osimagefs binary")
	fs.StringVar(&c.out, "out", "BENCHMARKS.md", `markdown file whose generated section is replaced ("-": stdout only)`)
	fs.StringVar(&c.command, "command", os.Getenv("BENCH_COMMAND"), "command shown in the report (default: this command line)")
	mountFlags := fs.String("mount-flags", "", `extra flags for every "osimagefs mount", e.g. "--parallel 16 --chunk-size 4MiB"; they come last, so they override --cache-dir and --log-level`)
	fs.StringVar(&c.mountLogLevel, "mount-log-level", "info", "--log-level of the mounts (logs go to WORK/logs/)")
	fs.StringVar(&c.work, "work", "", "work directory (default: a new temporary one, removed at exit)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (data, registry, caches, mount logs)")
	fs.DurationVar(&c.stepTimeout, "step-timeout", 10*time.Minute, "most time one step (push, dd, curl, random-read loop) may take")
	only := fs.String("only", strings.Join(allMeasures, ","), "measurements to run: seq (1, 2 and 5), random (3), wan (4), boot (6), wide (7), cpu (8), warm (9)")
	fs.IntVar(&c.bootRuns, "boot-runs", 3, "boots of every row and column of 6 (medians are reported)")
	bootRows := fs.String("boot-rows", "loopback,wan20,wan50", "rows of 6: loopback, wan20, wan50")
	bootCols := fs.String("boot-cols", "local,osimagefs,profile,qemucurl,nbdkit,pull", "columns of 6: local, osimagefs, profile, qemucurl, nbdkit, pull")
	fs.StringVar(&c.mediaCache, "media-cache", ".cache/bench", "directory keeping the boot media of 6 between runs")
	c.wideSize = 512 << 20
	fs.Var(sizeValue{&c.wideSize}, "wide-size", "bytes of disk.img read sequentially in 7 (at most -size)")
	fs.DurationVar(&c.wideLatency, "wide-latency", 20*time.Millisecond, "latency each way of the WAN of 7")
	fs.Int64Var(&c.wideRate, "wide-rate", 25_000, "bandwidth of each connection of the WAN of 7, in KB/s")
	fs.DurationVar(&c.wanLatency, "wan-latency", 20*time.Millisecond, "WAN latency each way")
	fs.Int64Var(&c.wanRate, "wan-rate", 100_000, "WAN bandwidth in KB/s (1000 bytes), summed over all connections")
	fs.StringVar(&c.wanProxy, "wan-proxy", "own", "own: toxiproxy with latency on both directions; helper: registrytest.NewToxiProxyNoTest (latency on responses only)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the data and of the random offsets")
	fs.BoolVar(&c.dropCaches, "drop-caches", true, "drop the page cache before every timed read (false: for analysis only; the registry's blob then stays in memory)")
	fs.StringVar(&c.cpuProfiles, "cpuprofile", "", "directory for a CPU profile of every mount (DIR/<mount>.pprof, via $OSIMAGEFS_CPUPROFILE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.runs < 1 || c.reads < 1 || c.curlRuns < 1 {
		return nil, errors.New("-runs, -reads and -curl-runs must be at least 1")
	}
	if c.size < 1<<20 {
		return nil, errors.New("-size must be at least 1MiB")
	}
	c.mountFlags = strings.Fields(*mountFlags)
	var err error
	if c.only, err = parseSet("-only", *only, allMeasures); err != nil {
		return nil, err
	}
	if c.bootRows, err = parseSet("-boot-rows", *bootRows, []string{"loopback", "wan20", "wan50"}); err != nil {
		return nil, err
	}
	if c.bootCols, err = parseSet("-boot-cols", *bootCols, []string{"local", "osimagefs", "profile", "qemucurl", "nbdkit", "pull"}); err != nil {
		return nil, err
	}
	if c.bootRuns < 1 {
		return nil, errors.New("-boot-runs must be at least 1")
	}
	c.wideSize = min(c.wideSize, c.size)
	if c.command == "" {
		c.command = strings.TrimSpace("go run ./test/bench " + strings.Join(args, " "))
	}
	return c, nil
}

// allMeasures are the measurements -only may name.
var allMeasures = []string{"seq", "random", "wan", "boot", "wide", "cpu", "warm"}

// parseSet parses a comma-separated list of names out of valid.
func parseSet(flagName, list string, valid []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
		case slices.Contains(valid, o):
			set[o] = true
		default:
			return nil, fmt.Errorf("%s: unknown name %q (want some of %s)", flagName, o, strings.Join(valid, ", "))
		}
	}
	return set, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, start: time.Now()}
	err = b.main(ctx)
	b.cl.run() // unmount, stop proxies and registry, remove files
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// bench is one benchmark run.
type bench struct {
	cfg   *config
	cl    cleanups
	start time.Time
	work  string
	res   results
	setup setup
	boot  bootSetup

	binInfo   string // which osimagefs was measured
	psiStart  map[string]time.Duration
	loadStart string // /proc/loadavg when the run began: other work on the machine skews the numbers
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) main(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	if os.Geteuid() != 0 {
		return errors.New("needs root (FUSE mounts, /proc/sys/vm/drop_caches); run make bench or sudo")
	}
	b.psiStart = map[string]time.Duration{}
	for _, k := range []string{"cpu", "io"} {
		b.psiStart[k], _ = psiTotal(k)
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.loadStart = strings.Join(strings.Fields(string(load))[:3], " ")
	}
	if err := b.prepare(ctx); err != nil {
		return err
	}
	if b.cfg.only["boot"] {
		if err := b.prepareBoot(ctx); err != nil {
			return fmt.Errorf("boot scenario: %w", err)
		}
	}
	for i := range b.cfg.runs {
		b.logf("run %d of %d", i+1, b.cfg.runs)
		if b.cfg.only["seq"] {
			if err := b.runSeq(ctx, i); err != nil {
				return fmt.Errorf("run %d, cold sequential / warm: %w", i+1, err)
			}
		}
		if b.cfg.only["random"] {
			if err := b.runRandom(ctx, i, false); err != nil {
				return fmt.Errorf("run %d, random reads: %w", i+1, err)
			}
		}
		if b.cfg.only["wan"] {
			if err := b.runWANSeq(ctx, i); err != nil {
				return fmt.Errorf("run %d, WAN sequential: %w", i+1, err)
			}
			if err := b.runRandom(ctx, i, true); err != nil {
				return fmt.Errorf("run %d, WAN random reads: %w", i+1, err)
			}
		}
		if b.cfg.only["wide"] {
			if err := b.runWide(ctx, i); err != nil {
				return fmt.Errorf("run %d, wide streams: %w", i+1, err)
			}
		}
		if b.cfg.only["cpu"] {
			if err := b.runCPU(ctx, i); err != nil {
				return fmt.Errorf("run %d, loopback CPU: %w", i+1, err)
			}
		}
		if b.cfg.only["warm"] {
			if err := b.runWarm(ctx, i); err != nil {
				return fmt.Errorf("run %d, warm reads: %w", i+1, err)
			}
		}
	}
	if b.cfg.only["boot"] {
		for i := range b.cfg.bootRuns {
			b.logf("boot run %d of %d", i+1, b.cfg.bootRuns)
			if err := b.runBoot(ctx, i); err != nil {
				return fmt.Errorf("boot run %d: %w", i+1, err)
			}
		}
	}
	return b.report()
}
