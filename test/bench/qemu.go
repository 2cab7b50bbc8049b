package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// guestTimeout bounds one boot, from qemu's start to the last marker.
const guestTimeout = 5 * time.Minute

// guestSource is where one boot takes the guest from: the kernel,
// initramfs and command line as local (or mounted) files, and the
// qemu -drive option of each of disk.img, root.squashfs and image.iso, in
// the order vda, vdb, vdc.
type guestSource struct {
	kernel, initramfs, cmdline string
	drives                     [3]string
}

// fileDrive is the -drive option of a read-only raw virtio disk backed by
// a file; direct opens it O_DIRECT (cache=none), as the e2e boot test does
// for disk.img, so its reads reach the file system under it.
func fileDrive(path string, direct bool) string {
	d := "file=" + path + ",if=virtio,format=raw,readonly=on"
	if direct {
		d += ",cache=none"
	}
	return d
}

// consoleWatch is qemu's console output; it records when the last of the
// markers has appeared (in order).
type consoleWatch struct {
	mu      sync.Mutex
	buf     strings.Builder
	markers []string
	seen    int // markers found
	from    int // where the next marker is looked for
	done    chan struct{}
	at      time.Time
}

func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	for c.seen < len(c.markers) {
		i := strings.Index(c.buf.String()[c.from:], c.markers[c.seen])
		if i < 0 {
			break
		}
		c.from += i + len(c.markers[c.seen])
		c.seen++
		if c.seen == len(c.markers) {
			c.at = time.Now()
			close(c.done)
		}
	}
	return len(p), nil
}

func (c *consoleWatch) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// bootGuest runs qemu (TCG) on src and returns the time from start until
// the guest printed its last marker. qemu is then left to power off (and
// killed if it does not).
func bootGuest(ctx context.Context, start time.Time, src guestSource, markers []string) (time.Duration, error) {
	cmdline, err := os.ReadFile(src.cmdline)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, guestTimeout)
	defer cancel()
	args := []string{"-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", src.kernel, "-initrd", src.initramfs, "-append", strings.TrimSpace(string(cmdline))}
	for _, d := range src.drives {
		args = append(args, "-drive", d)
	}
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.WaitDelay = 5 * time.Second
	out := &consoleWatch{markers: markers, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start qemu: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-out.done:
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return out.at.Sub(start), nil
	case err := <-exited:
		return 0, fmt.Errorf("qemu exited (%v) before the guest printed its markers; console (last 2 KiB):\n%s", err, lastBytes(out.String(), 2048))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("guest did not print its markers within %s: %w; console (last 2 KiB):\n%s", guestTimeout, ctx.Err(), lastBytes(out.String(), 2048))
	}
}

// lastBytes is the last n bytes of s.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
