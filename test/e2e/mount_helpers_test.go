package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	osfs "github.com/osimagefs/osimagefs/fs"
	"golang.org/x/sys/unix"
)

// lockedBuffer collects a process's stderr safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mountProc is a running `osimagefs mount`.
type mountProc struct {
	cmd    *exec.Cmd
	dir    string
	stderr *lockedBuffer
	done   chan error
}

// startMount runs osimagefs mount in the background and waits until the
// mount is up. The mount is torn down at the end of the test. Unless extra
// says otherwise, the mount gets its own empty disk cache and no prefetch,
// so that what reaches the registry is what the test's reads caused.
func startMount(t *testing.T, ref, dir string, extra ...string) *mountProc {
	t.Helper()
	return startMountBinary(t, binary, ref, dir, extra...)
}

// startMountBinary is startMount with another build of osimagefs.
func startMountBinary(t *testing.T, bin, ref, dir string, extra ...string) *mountProc {
	t.Helper()
	joined := strings.Join(extra, " ")
	if !strings.Contains(joined, "--cache-dir") {
		extra = append(extra, "--cache-dir", t.TempDir())
	}
	if !strings.Contains(joined, "--prefetch") {
		extra = append(extra, "--prefetch", "none")
	}
	args := append([]string{"mount", "--log-level", "debug"}, extra...)
	args = append(args, ref, dir)
	m := &mountProc{cmd: exec.Command(bin, args...), dir: dir, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	m.cmd.Stderr = m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() { m.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !isMounted(dir) {
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("osimagefs mount exited before mounting: %v\n%s", err, m.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 30 s:\n%s", m.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

// terminate sends SIGTERM and waits for a clean exit.
func (m *mountProc) terminate(t *testing.T) error {
	t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		m.done <- err
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("osimagefs did not exit 15 s after SIGTERM:\n%s", m.stderr.String())
		return nil
	}
}

// stop ends the process and removes any mount it left (test cleanup).
func (m *mountProc) stop(t *testing.T) {
	select {
	case err := <-m.done:
		m.done <- err
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	}
	if isMounted(m.dir) {
		_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	if t.Failed() {
		t.Logf("osimagefs stderr:\n%s", m.stderr.String())
	}
}

// isMounted reports whether something is mounted at dir.
func isMounted(dir string) bool {
	ms, err := osfs.MountsAt(dir)
	return err == nil && len(ms) > 0
}

// runCLI runs osimagefs with args and returns stdout, stderr and the exit
// status.
func runCLI(t *testing.T, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("osimagefs %v did not finish within %s", args, timeout)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// dropPageCache drops the page cache of the file at p, so that the next
// read reaches the daemon.
func dropPageCache(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise(DONTNEED) %s: %v", p, err)
	}
}
