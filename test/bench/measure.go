package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dropCaches writes dirty pages back and empties the page cache, dentries
// and inodes (echo 3 > /proc/sys/vm/drop_caches), so that the next read
// comes from the device (or from the FUSE daemon), and the registry's blob
// file is not in memory either.
func dropCaches(ctx context.Context) error {
	if err := run(ctx, 5*time.Minute, "sync"); err != nil {
		return err
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// dropCaches is dropCaches unless -drop-caches=false.
func (b *bench) dropCaches(ctx context.Context) error {
	if !b.cfg.dropCaches {
		return nil
	}
	return dropCaches(ctx)
}

// run runs a command, returning its combined output in the error.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// command builds a command killed (SIGKILL) when ctx ends; a process stuck
// on a FUSE read dies of it too (FUSE waits are killable).
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

var ddBytesRE = regexp.MustCompile(`(?m)^(\d+) bytes`)

// timing is how long a client process ran and the CPU time it used (user
// and system), and the CPU time this process (which hosts the registry
// and the proxies) used meanwhile.
type timing struct {
	wall, cpu, self time.Duration
}

// ddRead reads path to /dev/null with dd bs=1M and returns the wall-clock
// time of the dd process. It checks that dd read want bytes.
func ddRead(ctx context.Context, path string, want int64) (timing, error) {
	return dd(ctx, path, want)
}

// dd runs dd if=path of=/dev/null bs=1M with the extra arguments, timed,
// and checks that it read want bytes.
func dd(ctx context.Context, path string, want int64, extra ...string) (timing, error) {
	var stderr bytes.Buffer
	cmd := command(ctx, "dd", append([]string{"if=" + path, "of=/dev/null", "bs=1M"}, extra...)...)
	cmd.Stderr = &stderr
	self0 := selfCPU()
	start := time.Now()
	err := cmd.Run()
	t := timing{wall: time.Since(start), self: selfCPU() - self0}
	if err != nil {
		return t, fmt.Errorf("dd if=%s: %w (%v): %s", path, err, ctx.Err(), strings.TrimSpace(stderr.String()))
	}
	t.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	m := ddBytesRE.FindStringSubmatch(stderr.String())
	if m == nil {
		return t, fmt.Errorf("dd if=%s: no byte count in %q", path, stderr.String())
	}
	if n, _ := strconv.ParseInt(m[1], 10, 64); n != want {
		return t, fmt.Errorf("dd if=%s read %d bytes, want %d", path, n, want)
	}
	return t, nil
}

// selfCPU is the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time (user and system) process pid has used, from
// /proc/PID/stat (in clock ticks of 10 ms, USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// curlGet fetches url (whole, or the inclusive byte range rng "a-b" when
// not empty) to /dev/null with curl and returns the process's timing and
// curl's own time_total (which leaves out process start-up). It checks the
// status and the number of bytes.
func curlGet(ctx context.Context, url, rng string, want int64) (t timing, total time.Duration, err error) {
	args := []string{"-s", "-S", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"}
	wantCode := "200"
	if rng != "" {
		args = append(args, "-r", rng)
		wantCode = "206"
	}
	args = append(args, url)
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, "curl", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	self0 := selfCPU()
	start := time.Now()
	err = cmd.Run()
	t = timing{wall: time.Since(start), self: selfCPU() - self0}
	if err != nil {
		return t, 0, fmt.Errorf("curl %s: %w (%v): %s", url, err, ctx.Err(), strings.TrimSpace(stderr.String()))
	}
	t.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	f := strings.Fields(stdout.String())
	if len(f) != 3 || f[0] != wantCode || f[1] != strconv.FormatInt(want, 10) {
		return t, 0, fmt.Errorf("curl %s (range %q): got code/bytes/time %q, want %s and %d bytes", url, rng, stdout.String(), wantCode, want)
	}
	secs, err := strconv.ParseFloat(f[2], 64)
	if err != nil {
		return t, 0, fmt.Errorf("curl time_total %q: %w", f[2], err)
	}
	return t, time.Duration(secs * float64(time.Second)), nil
}

// randomOffsets returns n offsets of blockSize-aligned blocks in a file of
// size bytes, uniformly distributed, from a seeded PCG.
func randomOffsets(seed uint64, n int, size, blockSize int64) []int64 {
	r := rand.New(rand.NewPCG(seed, 0x62656e6368))
	blocks := size / blockSize
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = r.Int64N(blocks) * blockSize
	}
	return offs
}

// randomReads preads blockSize bytes at each offset of the file at path,
// one after the other, and returns each read's latency. On a timeout or
// interrupt it calls abort (which must make a read stuck in the kernel
// return) and gives up.
func randomReads(ctx context.Context, path string, offs []int64, blockSize int, abort func()) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type result struct {
		lat []time.Duration
		err error
	}
	res := make(chan result, 1)
	go func() {
		buf := make([]byte, blockSize)
		lat := make([]time.Duration, 0, len(offs))
		for _, off := range offs {
			if ctx.Err() != nil {
				res <- result{lat, ctx.Err()}
				return
			}
			start := time.Now()
			n, err := f.ReadAt(buf, off)
			d := time.Since(start)
			if err != nil || n != blockSize {
				res <- result{lat, fmt.Errorf("pread %d bytes at %d: got %d: %v", blockSize, off, n, err)}
				return
			}
			lat = append(lat, d)
		}
		res <- result{lat, nil}
	}()
	select {
	case r := <-res:
		return r.lat, r.err
	case <-ctx.Done():
		abort()
		select {
		case <-res:
		case <-time.After(15 * time.Second):
		}
		return nil, fmt.Errorf("random reads of %s: %w", path, ctx.Err())
	}
}

// percentile is the p-th percentile (0..100) of ds by the nearest-rank
// method; ds need not be sorted.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// median of float64 values (mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mbps is bytes per duration in MB/s (10^6 bytes per second).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds() / 1e6
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// errTimeout tells a step that ran out of time from other failures.
var errTimeout = errors.New("step timed out")

// stepCtx bounds one measured step.
func (b *bench) stepCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, b.cfg.stepTimeout, errTimeout)
}

// ddReadPrefix is ddRead of the first n bytes of path (n a multiple of
// 1 MiB, or the whole file when n is its size).
func ddReadPrefix(ctx context.Context, path string, n int64) (timing, error) {
	return dd(ctx, path, n, fmt.Sprintf("count=%d", (n+(1<<20)-1)>>20))
}

// ddDaemon is ddReadPrefix of n bytes of file on the mount of d, with the
// daemon's CPU time (from /proc/PID/stat) while dd ran.
func (b *bench) ddDaemon(ctx context.Context, d *daemon, file string, n int64) (timing, time.Duration, error) {
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	cpu0, err0 := procCPU(d.cmd.Process.Pid)
	t, err := ddReadPrefix(sctx, file, n)
	if err != nil {
		if sctx.Err() != nil {
			d.abort()
		}
		return t, 0, err
	}
	cpu1, err1 := procCPU(d.cmd.Process.Pid)
	if err := cmp.Or(err0, err1); err != nil {
		return t, 0, err
	}
	return t, cpu1 - cpu0, nil
}
