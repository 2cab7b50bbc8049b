package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// daemon is one running `osimagefs mount`.
type daemon struct {
	cmd     *exec.Cmd
	dir     string // mount point
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid after done
	stop    func() error  // the registered cleanup: unmount and reap
}

// startMount runs `osimagefs mount [--log-level L] [extra...] [user flags]
// --cache-dir cacheDir ref dir`, logging to logPath, and waits until dir is
// a mount point. The daemon is registered with cl, so it is torn down even
// when the benchmark fails or is interrupted.
func (b *bench) startMount(ctx context.Context, name, ref, cacheDir string, extra ...string) (*daemon, error) {
	dir := filepath.Join(b.work, "mnt-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(b.work, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The registry and the proxies in front of it speak plain HTTP.
	args := []string{"mount", "--plain-http", "--log-level", b.cfg.mountLogLevel, "--cache-dir", cacheDir}
	args = append(args, extra...)
	args = append(args, b.cfg.mountFlags...)
	args = append(args, ref, dir)
	cmd := exec.Command(b.cfg.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if b.cfg.cpuProfiles != "" {
		if err := os.MkdirAll(b.cfg.cpuProfiles, 0o755); err != nil {
			logf.Close()
			return nil, err
		}
		cmd.Env = append(os.Environ(), "OSIMAGEFS_CPUPROFILE="+filepath.Join(b.cfg.cpuProfiles, name+".pprof"))
	}
	// If the benchmark dies without cleaning up (SIGKILL), the daemon gets
	// SIGTERM and unmounts itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", b.cfg.bin, err)
	}
	d := &daemon{cmd: cmd, dir: dir, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	d.stop = b.cl.add("mount "+name, d.unmount)
	b.logf("  mount %s: %s %s", name, b.cfg.bin, strings.Join(args, " "))

	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !isMounted(dir) {
		select {
		case <-d.done:
			_ = d.stop()
			return nil, fmt.Errorf("osimagefs mount exited before mounting (%v):\n%s", d.err, tail(logPath, 20))
		case <-deadline.C:
			_ = d.stop()
			return nil, fmt.Errorf("not mounted after 60 s:\n%s", tail(logPath, 20))
		case <-ctx.Done():
			_ = d.stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return d, nil
}

// unmount ends the daemon cleanly (SIGTERM makes it unmount), kills it if
// it does not exit in time, and detaches any mount it left behind. It is
// idempotent.
func (d *daemon) unmount() error {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(20 * time.Second):
			_ = d.cmd.Process.Kill()
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
			}
		}
	}
	if isMounted(d.dir) {
		if err := syscall.Unmount(d.dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("detach %s: %w", d.dir, err)
		}
	}
	return nil
}

// abort kills the daemon at once, which makes the kernel fail every FUSE
// request in flight, so a reader stuck on the mount returns; then it
// detaches the mount.
func (d *daemon) abort() {
	_ = d.cmd.Process.Kill()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
	}
	if isMounted(d.dir) {
		_ = syscall.Unmount(d.dir, syscall.MNT_DETACH)
	}
}

// peakRSS is the daemon's VmHWM (peak resident set size) in bytes.
func (d *daemon) peakRSS() (int64, error) { return fixture.PeakRSS(d.cmd.Process.Pid) }

// isMounted reports whether something is mounted exactly at dir.
func isMounted(dir string) bool {
	ms, err := osfs.MountsAt(dir)
	return err == nil && len(ms) > 0
}

// tail returns the last n lines of the file at p.
func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
