package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const blockSize = 4096

// results holds one value per run for every measure.
type results struct {
	seqMount, seqCurl       []float64 // MB/s
	seqBlobMount            []float64 // MB/s, cold with --verify blob
	seqBlobMountCPU         []cpuSplit
	warmMount, warmLocal    []float64 // MB/s
	rss                     []int64   // daemon VmHWM during the cold sequential read
	rnd, wanRnd             []randomRun
	wanSeqMount, wanSeqCurl []float64 // MB/s
	wanSeqFetched           []int64   // blob bytes the mount fetched for the sequential read
	wanRSS                  []int64
	boot                    bootResults
	wide                    []wideRun
	cpu                     []cpuRun
	warm                    []warmRun
	// CPU time used by each side of the sequential reads.
	seqMountCPU, seqCurlCPU, warmMountCPU, warmLocalCPU, wanMountCPU, wanCurlCPU []cpuSplit
}

// cpuSplit is the CPU time of one timed read: the client process (dd or
// curl), the daemon (0 for curl and the local dd) and this process, which
// hosts the registry and the proxies.
type cpuSplit struct{ client, daemon, registry time.Duration }

func (c cpuSplit) total() time.Duration { return c.client + c.daemon + c.registry }

// randomRun is one run of the random-read measurement.
type randomRun struct {
	p50, p99, mean time.Duration // of the mount's reads
	// Of the reads that were the first in the run to touch their chunk
	// (the others may find it cached already).
	firstP50, firstP99 time.Duration
	firstN             int
	curl               time.Duration // median time_total of the curl range requests
	curlWall           time.Duration // median wall-clock time of the curl processes
	http               time.Duration // median of Go net/http range requests on a kept-alive connection
	fetched            int64         // blob bytes fetched by the mount
	requests           int64         // blob requests made by the mount
}

// withMount mounts ref with cacheDir, runs fn and always unmounts.
func (b *bench) withMount(ctx context.Context, name, ref, cacheDir string, fn func(d *daemon, file string) error, extra ...string) error {
	d, err := b.startMount(ctx, name, ref, cacheDir, extra...)
	if err != nil {
		return err
	}
	err = fn(d, filepath.Join(d.dir, b.setup.path))
	if serr := d.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("%w (mount log: %s)", err, d.logPath)
	}
	return nil
}

// ddMount is ddRead of a file on the mount of d, with the CPU time of dd,
// the daemon and the registry; when dd times out the daemon is killed so
// that nothing stays stuck.
func (b *bench) ddMount(ctx context.Context, d *daemon, file string) (time.Duration, cpuSplit, error) {
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	cpu0, err0 := procCPU(d.cmd.Process.Pid)
	t, err := ddRead(sctx, file, b.cfg.size)
	if err != nil {
		if sctx.Err() != nil {
			d.abort()
		}
		return 0, cpuSplit{}, err
	}
	cpu1, err1 := procCPU(d.cmd.Process.Pid)
	if err := cmp.Or(err0, err1); err != nil {
		return 0, cpuSplit{}, err
	}
	return t.wall, cpuSplit{client: t.cpu, daemon: cpu1 - cpu0, registry: t.self}, nil
}

// runSeq measures 1 (cold sequential vs curl), 2 (warm re-read from the
// disk cache vs the local copy) and 5 (peak RSS during 1).
func (b *bench) runSeq(ctx context.Context, i int) error {
	size := b.cfg.size
	cache := filepath.Join(b.work, fmt.Sprintf("cache-seq-%d", i+1))
	defer os.RemoveAll(cache)

	if err := b.dropCaches(ctx); err != nil {
		return err
	}
	sctx, cancel := b.stepCtx(ctx)
	t, _, err := curlGet(sctx, blobURL(b.setup.regHost, b.setup.digest), "", size)
	cancel()
	if err != nil {
		return err
	}
	b.res.seqCurl = append(b.res.seqCurl, mbps(size, t.wall))
	b.res.seqCurlCPU = append(b.res.seqCurlCPU, cpuSplit{client: t.cpu, registry: t.self})
	b.logf("  cold sequential, curl GET: %.0f MB/s", mbps(size, t.wall))

	err = b.withMount(ctx, fmt.Sprintf("seq-%d", i+1), ref(b.setup.regHost), cache, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		took, cpu, err := b.ddMount(ctx, d, file)
		if err != nil {
			return err
		}
		rss, err := d.peakRSS()
		if err != nil {
			return err
		}
		b.res.seqMount = append(b.res.seqMount, mbps(size, took))
		b.res.seqMountCPU = append(b.res.seqMountCPU, cpu)
		b.res.rss = append(b.res.rss, rss)
		b.logf("  cold sequential, mount dd: %.0f MB/s, daemon VmHWM %s", mbps(size, took), fmtBytes(rss))
		return checkLogged(d.logPath, "mode=pieces")
	})
	if err != nil {
		return err
	}
	// The same without piece checks (--verify blob): the cost of checking
	// every piece before a reader gets it.
	plain := filepath.Join(b.work, fmt.Sprintf("cache-seq-blob-%d", i+1))
	defer os.RemoveAll(plain)
	err = b.withMount(ctx, fmt.Sprintf("seq-blob-%d", i+1), ref(b.setup.regHost), plain, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		took, cpu, err := b.ddMount(ctx, d, file)
		if err != nil {
			return err
		}
		b.res.seqBlobMount = append(b.res.seqBlobMount, mbps(size, took))
		b.res.seqBlobMountCPU = append(b.res.seqBlobMountCPU, cpu)
		b.logf("  cold sequential, pieces not checked (--verify blob), mount dd: %.0f MB/s", mbps(size, took))
		return nil
	}, "--verify", "blob")
	if err != nil {
		return err
	}

	err = b.withMount(ctx, fmt.Sprintf("warm-%d", i+1), ref(b.setup.regHost), cache, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		took, cpu, err := b.ddMount(ctx, d, file)
		if err != nil {
			return err
		}
		b.res.warmMount = append(b.res.warmMount, mbps(size, took))
		b.res.warmMountCPU = append(b.res.warmMountCPU, cpu)
		b.logf("  warm re-read from the disk cache, mount dd: %.0f MB/s", mbps(size, took))
		return nil
	})
	if err != nil {
		return err
	}

	if err := b.dropCaches(ctx); err != nil {
		return err
	}
	sctx, cancel = b.stepCtx(ctx)
	lt, err := ddRead(sctx, b.setup.local, size)
	cancel()
	if err != nil {
		return err
	}
	b.res.warmLocal = append(b.res.warmLocal, mbps(size, lt.wall))
	b.res.warmLocalCPU = append(b.res.warmLocalCPU, cpuSplit{client: lt.cpu})
	b.logf("  local copy dd: %.0f MB/s", mbps(size, lt.wall))
	return nil
}

// runWANSeq measures 4 for sequential reads: the mount and curl through
// the WAN proxy.
func (b *bench) runWANSeq(ctx context.Context, i int) error {
	size := b.cfg.size
	cache := filepath.Join(b.work, fmt.Sprintf("cache-wan-seq-%d", i+1))
	defer os.RemoveAll(cache)

	if err := b.dropCaches(ctx); err != nil {
		return err
	}
	sctx, cancel := b.stepCtx(ctx)
	t, _, err := curlGet(sctx, blobURL(b.setup.wanHost, b.setup.digest), "", size)
	cancel()
	if err != nil {
		return err
	}
	b.res.wanSeqCurl = append(b.res.wanSeqCurl, mbps(size, t.wall))
	b.res.wanCurlCPU = append(b.res.wanCurlCPU, cpuSplit{client: t.cpu, registry: t.self})
	b.logf("  WAN cold sequential, curl GET: %.0f MB/s", mbps(size, t.wall))

	cnt := b.setup.counter
	before := cnt.BytesFor(b.setup.digest)
	err = b.withMount(ctx, fmt.Sprintf("wan-seq-%d", i+1), ref(b.setup.wanHost), cache, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		took, cpu, err := b.ddMount(ctx, d, file)
		if err != nil {
			return err
		}
		rss, err := d.peakRSS()
		if err != nil {
			return err
		}
		b.res.wanSeqMount = append(b.res.wanSeqMount, mbps(size, took))
		b.res.wanMountCPU = append(b.res.wanMountCPU, cpu)
		b.res.wanRSS = append(b.res.wanRSS, rss)
		b.logf("  WAN cold sequential, mount dd: %.0f MB/s, daemon VmHWM %s", mbps(size, took), fmtBytes(rss))
		return nil
	})
	if err != nil {
		return err
	}
	fetched := cnt.BytesFor(b.setup.digest) - before
	b.res.wanSeqFetched = append(b.res.wanSeqFetched, fetched)
	b.logf("  WAN cold sequential, mount fetched %.3f bytes per byte read", float64(fetched)/float64(size))
	return nil
}

// runRandom measures 3 (or its WAN half of 4): -reads random 4 KiB
// preads through a fresh mount behind the counting proxy (and the WAN
// proxy), against 4 KiB range requests over the same path.
func (b *bench) runRandom(ctx context.Context, i int, viaWAN bool) error {
	host, name := b.setup.cntHost, fmt.Sprintf("random-%d", i+1)
	if viaWAN {
		host, name = b.setup.wanHost, fmt.Sprintf("wan-random-%d", i+1)
	}
	cache := filepath.Join(b.work, "cache-"+name)
	defer os.RemoveAll(cache)
	url := blobURL(host, b.setup.digest)
	seed := b.cfg.seed*1_000_003 + uint64(i)*16
	if viaWAN {
		seed += 8
	}
	var r randomRun

	// Baselines: single 4 KiB range requests with curl (one process and
	// connection each) and with Go net/http (one kept-alive connection).
	if err := b.dropCaches(ctx); err != nil {
		return err
	}
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	var totals, walls []float64
	for _, off := range randomOffsets(seed+1, b.cfg.curlRuns, b.cfg.size, blockSize) {
		t, total, err := curlGet(sctx, url, fmt.Sprintf("%d-%d", off, off+blockSize-1), blockSize)
		if err != nil {
			return err
		}
		totals, walls = append(totals, float64(total)), append(walls, float64(t.wall))
	}
	r.curl, r.curlWall = time.Duration(median(totals)), time.Duration(median(walls))
	hl, err := httpRanges(sctx, url, randomOffsets(seed+2, b.cfg.curlRuns, b.cfg.size, blockSize))
	if err != nil {
		return err
	}
	r.http = percentile(hl, 50)

	// The mount.
	cnt := b.setup.counter
	bytes0, reqs0 := cnt.BytesFor(b.setup.digest), cnt.RequestsFor(b.setup.digest)
	err = b.withMount(ctx, name, ref(host), cache, func(d *daemon, file string) error {
		if err := b.dropCaches(ctx); err != nil {
			return err
		}
		sctx, cancel := b.stepCtx(ctx)
		defer cancel()
		offs := randomOffsets(seed, b.cfg.reads, b.cfg.size, blockSize)
		lat, err := randomReads(sctx, file, offs, blockSize, d.abort)
		if err != nil {
			return err
		}
		var sum time.Duration
		var first []time.Duration
		seen := map[int64]bool{}
		for j, l := range lat {
			sum += l
			if c := offs[j] / b.chunkSize(); !seen[c] {
				seen[c] = true
				first = append(first, l)
			}
		}
		r.p50, r.p99, r.mean = percentile(lat, 50), percentile(lat, 99), sum/time.Duration(len(lat))
		r.firstP50, r.firstP99, r.firstN = percentile(first, 50), percentile(first, 99), len(first)
		return nil
	})
	if err != nil {
		return err
	}
	r.fetched = cnt.BytesFor(b.setup.digest) - bytes0
	r.requests = cnt.RequestsFor(b.setup.digest) - reqs0
	b.logf("  %s: p50 %.2f ms, p99 %.2f ms, mean %.2f ms; first touch of a chunk (%d): p50 %.2f ms, p99 %.2f ms; curl range %.2f ms (wall %.2f ms), net/http %.2f ms; fetched %d requests, %.2f MiB per read",
		name, ms(r.p50), ms(r.p99), ms(r.mean), r.firstN, ms(r.firstP50), ms(r.firstP99), ms(r.curl), ms(r.curlWall), ms(r.http), r.requests, float64(r.fetched)/float64(b.cfg.reads)/(1<<20))
	if viaWAN {
		b.res.wanRnd = append(b.res.wanRnd, r)
	} else {
		b.res.rnd = append(b.res.rnd, r)
	}
	return nil
}

// httpRanges times 4 KiB range requests at offs with Go net/http over one
// kept-alive connection (opened by an unmeasured first request).
func httpRanges(ctx context.Context, url string, offs []int64) ([]time.Duration, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(off int64) (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+blockSize-1))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusPartialContent || n != blockSize {
			return 0, fmt.Errorf("GET %s range at %d: status %s, %d bytes, %v", url, off, resp.Status, n, err)
		}
		return took, nil
	}
	if _, err := get(0); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, off := range offs {
		d, err := get(off)
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
	}
	return lat, nil
}

// checkLogged fails unless the mount log at path has a line holding want
// (the verification mode the run is meant to measure).
func checkLogged(path, want string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), want) {
		return fmt.Errorf("the mount log %s has no %q: the run did not measure what it says", path, want)
	}
	return nil
}
