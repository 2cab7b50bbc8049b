package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestSoakFaults mounts an image through toxiproxy and makes thousands of
// random reads (random file, offset and length up to 256 KiB) over all its
// layers while toxiproxy injects resets, latency, slicing and stalls,
// switching between them during the run. Every byte returned must equal
// the source, every failure must be EIO, and afterwards the daemon's open
// file descriptors and threads must come back to what they were before.
//
// 10,000 reads (2,000 with -short; SOAK_READS sets the number), stopping
// early if a time budget of 180 s (SOAK_BUDGET) runs out.
func TestSoakFaults(t *testing.T) {
	requireMountable(t)
	reads := 10_000
	if testing.Short() {
		reads = 2_000
	}
	if v := os.Getenv("SOAK_READS"); v != "" {
		reads, _ = strconv.Atoi(v)
	}
	// The reads stop early when this is spent, so that the test stays
	// under about two minutes where everything runs slower (under the race
	// detector the in-process registry and toxiproxy manage ~20 reads/s on
	// two CPUs, against ~100 without it).
	budget := 180 * time.Second
	if v := os.Getenv("SOAK_BUDGET"); v != "" {
		budget, _ = time.ParseDuration(v)
	}
	const (
		workers     = 16
		maxRead     = 256 << 10
		readTimeout = 5 * time.Second
		phase       = 1500 * time.Millisecond
	)
	reg := registrytest.Start(t)
	img := pushRandomImage(t, reg.Host(), "os/soak", map[string]int{
		"disk.img": 48<<20 + 4097, "squashfs": 12<<20 + 3, "kernel": 6<<20 + 17, "initramfs": 3<<20 + 5,
		"uki": 2<<20 + 3, "iso": 8<<20 + 1, "cmdline": 37,
	})
	toxi := registrytest.NewToxiProxy(t, reg.Host())
	dir := t.TempDir()
	// A small memory cache, no disk cache and 64 KiB chunks, so that most
	// reads go to the registry through the faults, fetching little more
	// than they read.
	// The daemon is built without the race detector: the soak is about
	// volume under faults (races are TestProcessConcurrentReadersNoRace's).
	m := startMountBinary(t, plainBinary, img.img.ref(toxi.Host()), dir, "--plain-http", "--read-timeout", readTimeout.String(),
		"--cache-dir", "none", "--memory-cache", "8MiB", "--chunk-size", "64KiB", "--parallel", "16")
	pid := m.cmd.Process.Pid

	files := make([]*os.File, len(img.files))
	for i, f := range img.files {
		fh, err := os.Open(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		// No kernel read-ahead: a read asks the daemon for its own range.
		_ = unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_RANDOM)
		files[i] = fh
	}

	var (
		tried, wrong, eios, others atomic.Int64
		mu                         sync.Mutex
		eioWaits, okTimes          []time.Duration
		otherErrs                  []string
		outageWindows              [][2]time.Time
		eioStarts                  []time.Time
	)
	// run makes n random reads with w workers, or as many as it can
	// until the budget is spent.
	run := func(n, w int, seed uint64, budget time.Duration) {
		var next atomic.Int64
		var wg sync.WaitGroup
		end := time.Now().Add(budget)
		for id := range w {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(id)))
				buf := make([]byte, maxRead)
				for next.Add(1) <= int64(n) && time.Now().Before(end) {
					i := r.IntN(len(files))
					src := img.files[i].data
					off := r.Int64N(int64(len(src)))
					length := min(1+r.IntN(maxRead), len(src)-int(off))
					p := buf[:length]
					start := time.Now()
					got, err := files[i].ReadAt(p, off)
					took := time.Since(start)
					tried.Add(1)
					if got > 0 && !bytes.Equal(p[:got], src[off:off+int64(got)]) {
						wrong.Add(1)
					}
					// Drop what the read put in the page cache, so that the
					// next read of it asks the daemon again.
					_ = unix.Fadvise(int(files[i].Fd()), off, int64(length), unix.FADV_DONTNEED)
					mu.Lock()
					switch {
					case err == nil && got == length:
						okTimes = append(okTimes, took)
					case errors.Is(err, syscall.EIO):
						eios.Add(1)
						eioWaits = append(eioWaits, took)
						eioStarts = append(eioStarts, start)
					default:
						others.Add(1)
						otherErrs = append(otherErrs, fmt.Sprintf("%s at %d+%d: %d bytes, %v", img.files[i].name, off, length, got, err))
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}

	// Warm up without faults, then take the baseline with the proxy's
	// connections dropped (as for the final count), so that idle
	// keep-alive connections are not counted either time.
	atMount := soakProcCounts(t, pid)
	run(200, workers, 1, time.Minute)
	if wrong.Load() != 0 || eios.Load() != 0 || others.Load() != 0 {
		t.Fatalf("warm-up without faults: %d wrong, %d EIO, other errors: %v", wrong.Load(), eios.Load(), otherErrs)
	}
	baseline := soakSettle(t, toxi, pid)
	t.Logf("daemon: %d fds, %d threads after the warm-up (after mounting: %d fds, %d threads)", baseline.fds, baseline.threads, atMount.fds, atMount.threads)
	tried.Store(0)
	okTimes = nil

	// The faults, switched every phase.
	phases := []struct {
		name string
		set  func()
	}{
		{"latency 50±25 ms", func() { soakMust(t, toxi.AddToxic("latency", 1, map[string]any{"latency": 50, "jitter": 25})) }},
		{"resets on 30% of connections", func() { toxi.AddResetPeer(0.3) }},
		{"slicing", func() { toxi.AddSlicer() }},
		{"none", func() {}},
		{"stalls on 20% of connections", func() { toxi.AddTimeout(0, 0.2) }},
		{"stall then close on 30% of connections", func() { toxi.AddTimeout(300, 0.3) }},
		{"latency, slicing and resets on 10%", func() {
			toxi.AddLatency(30)
			toxi.AddSlicer()
			toxi.AddResetPeer(0.1)
		}},
		{"data cut after 64 KiB on 30% of connections", func() {
			soakMust(t, toxi.AddToxic("limit_data", 0.3, map[string]any{"bytes": 64 << 10}))
		}},
	}
	// Twice during the run, an outage longer than the read timeout, so
	// that some reads must fail: the registry unreachable (connections
	// refused), then every connection stalling.
	outages := map[int]struct {
		name       string
		start, end func()
	}{
		4: {"outage: connections refused", toxi.Disable, toxi.Enable},
		9: {"outage: every connection stalls", func() { toxi.AddTimeout(0, 1) }, func() {}},
	}
	const outage = readTimeout + 500*time.Millisecond
	if os.Getenv("SOAK_NOFAULTS") != "" {
		phases, outages = phases[3:4], nil
	}
	stop := make(chan struct{})
	var switcher sync.WaitGroup
	phasesRun := map[string]int{}
	switcher.Go(func() {
		for i := 0; ; i++ {
			toxi.RemoveAll()
			d := phase
			o, isOutage := outages[i]
			if isOutage {
				o.start()
				mu.Lock()
				outageWindows = append(outageWindows, [2]time.Time{time.Now(), time.Now().Add(outage)})
				mu.Unlock()
				phasesRun[o.name]++
				d = outage
			} else {
				p := phases[i%len(phases)]
				p.set()
				phasesRun[p.name]++
			}
			select {
			case <-stop:
				if isOutage {
					o.end()
				}
				toxi.RemoveAll()
				return
			case <-time.After(d):
			}
			if isOutage {
				o.end()
			}
		}
	})
	start := time.Now()
	cpu0, self0 := soakCPUTime(t, pid), soakSelfCPU()
	run(reads, workers, 2, budget)
	close(stop)
	switcher.Wait()
	elapsed := time.Since(start)
	t.Logf("CPU used during the soak: daemon %s, test process (registry, toxiproxy, readers) %s", (soakCPUTime(t, pid) - cpu0).Round(time.Millisecond), (soakSelfCPU() - self0).Round(time.Millisecond))

	mu.Lock()
	sort.Slice(eioWaits, func(i, j int) bool { return eioWaits[i] < eioWaits[j] })
	sort.Slice(okTimes, func(i, j int) bool { return okTimes[i] < okTimes[j] })
	worstEIO := time.Duration(0)
	if len(eioWaits) > 0 {
		worstEIO = eioWaits[len(eioWaits)-1]
	}
	mu.Unlock()
	t.Logf("soak: %d reads in %s with %d workers through %d fault phases (%v)", tried.Load(), elapsed.Round(time.Millisecond), workers, soakSum(phasesRun), phasesRun)
	t.Logf("reads tried: %d, wrong bytes: %d, EIOs: %d, other errors: %d", tried.Load(), wrong.Load(), eios.Load(), others.Load())
	if tried.Load() < int64(reads) {
		t.Logf("NOTE: the time budget of %s ran out after %d of %d reads (SOAK_BUDGET raises it)", budget, tried.Load(), reads)
	}
	t.Logf("worst wait before EIO: %s (read timeout %s); successful reads: median %s, p99 %s, worst %s",
		worstEIO.Round(time.Millisecond), readTimeout, soakPercentile(okTimes, 50), soakPercentile(okTimes, 99), soakPercentile(okTimes, 100))
	if wrong.Load() != 0 {
		t.Errorf("%d reads returned wrong bytes", wrong.Load())
	}
	if others.Load() != 0 {
		t.Errorf("%d reads failed with something other than EIO: %s", others.Load(), strings.Join(otherErrs[:min(10, len(otherErrs))], "; "))
	}
	if worstEIO > readTimeout+1500*time.Millisecond {
		t.Errorf("a read waited %s before EIO, read timeout %s", worstEIO, readTimeout)
	}
	if len(outageWindows) > 0 && eios.Load() == 0 {
		t.Error("no read failed during the outages")
	}
	// Outside the outages (and the read timeout after them) the faults
	// are transient: retries must carry nearly every read.
	inOutage := 0
	for _, st := range eioStarts {
		for _, w := range outageWindows {
			if st.After(w[0].Add(-readTimeout)) && st.Before(w[1].Add(readTimeout)) {
				inOutage++
				break
			}
		}
	}
	t.Logf("EIOs: %d during or just after the %d outages, %d elsewhere", inOutage, len(outageWindows), len(eioStarts)-inOutage)
	if elsewhere := len(eioStarts) - inOutage; float64(elsewhere) > 0.01*float64(tried.Load()) {
		t.Errorf("%d of %d reads failed outside the outages: the faults there are transient, retries should carry the reads", elsewhere, tried.Load())
	}

	// Everything returns to the baseline once the faults are gone.
	after := soakSettle(t, toxi, pid)
	t.Logf("daemon after the soak: %d fds (baseline %d), %d threads (baseline %d)", after.fds, baseline.fds, after.threads, baseline.threads)
	if after.fds > baseline.fds+2 {
		t.Errorf("daemon holds %d fds after the soak, %d before: a leak", after.fds, baseline.fds)
	}
	if after.threads > baseline.threads+8 {
		t.Errorf("daemon runs %d threads after the soak, %d before", after.threads, baseline.threads)
	}
	// The mount still serves every file correctly.
	for i, f := range img.files {
		got, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil || !bytes.Equal(got, img.files[i].data) {
			t.Fatalf("%s after the soak: %v, equal: %v", f.name, err, bytes.Equal(got, img.files[i].data))
		}
	}
}

type soakCounts struct{ fds, threads int }

// soakProcCounts returns the open fds and threads of process pid.
func soakProcCounts(t *testing.T, pid int) soakCounts {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	threads := -1
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return soakCounts{len(fds), threads}
}

// soakSettle drops the proxy's connections (the daemon's idle keep-alive
// connections then close), waits for the daemon to quiesce and returns its
// counts once they stop changing.
func soakSettle(t *testing.T, toxi *registrytest.Toxi, pid int) soakCounts {
	t.Helper()
	toxi.RemoveAll()
	toxi.Disable()
	toxi.Enable()
	prev := soakCounts{-1, -1}
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		c := soakProcCounts(t, pid)
		if c == prev {
			return c
		}
		prev = c
	}
	return prev
}

func soakMust(t *testing.T, err error) {
	if err != nil {
		t.Error(err)
	}
}

func soakSum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// soakPercentile is the p-th percentile of sorted durations.
func soakPercentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := min(len(d)-1, len(d)*p/100)
	return d[i].Round(time.Millisecond)
}

// soakCPUTime is the user+system CPU time process pid has used.
func soakCPUTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which ends with ')'): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second here).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// soakSelfCPU is the CPU time this process has used.
func soakSelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
