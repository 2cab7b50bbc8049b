package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootTimeout bounds one guest boot, from qemu's start to its exit.
const bootTimeout = 120 * time.Second

// vmFiles are the files a guest boots from: a directory of the tree
// (<mount>/amd64/virtualization) or the local sources.
type vmFiles struct {
	kernel, initramfs, cmdline, disk, squashfs, iso string
}

// treeVMFiles are the files of dir, a <arch>/<variant> directory of a mount.
func treeVMFiles(dir string) vmFiles {
	p := func(n string) string { return filepath.Join(dir, n) }
	return vmFiles{p("kernel"), p("initramfs"), p("cmdline"), p("disk.img"), p("root.squashfs"), p("image.iso")}
}

// vmResult is what a guest printed on its serial console (and qemu on its
// stderr), how long it ran, and how it ended.
type vmResult struct {
	output string
	took   time.Duration
	err    error
}

// bootVM runs the guest under qemu (TCG) until it powers off or
// bootTimeout passes. The disks are attached read-only as virtio devices,
// in the order vda (disk.img), vdb (root.squashfs), vdc (image.iso);
// disk.img with cache=none, that is O_DIRECT, so that its reads reach the
// file system under it rather than the host's page cache.
func bootVM(ctx context.Context, f vmFiles) vmResult {
	cmdline, err := os.ReadFile(f.cmdline)
	if err != nil {
		return vmResult{err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg", "-m", "512", "-nographic", "-no-reboot", "-nic", "none",
		"-kernel", f.kernel,
		"-initrd", f.initramfs,
		"-append", strings.TrimSpace(string(cmdline)),
		"-drive", "file="+f.disk+",if=virtio,format=raw,readonly=on,cache=none",
		"-drive", "file="+f.squashfs+",if=virtio,format=raw,readonly=on",
		"-drive", "file="+f.iso+",if=virtio,format=raw,readonly=on",
	)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		err = fmt.Errorf("qemu did not finish within %s: %w", bootTimeout, ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("qemu: %w", err)
	}
	return vmResult{output: out.String(), took: took, err: err}
}

// bootVMs boots one guest per entry of files at the same time.
func bootVMs(ctx context.Context, files ...vmFiles) []vmResult {
	res := make([]vmResult, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { res[i] = bootVM(ctx, f) })
	}
	wg.Wait()
	return res
}

// checkGuest fails the test unless the guest ran to its end and printed
// every marker of the media.
func checkGuest(t *testing.T, name string, r vmResult, m *osMedia) {
	t.Helper()
	var missing []string
	for _, k := range []string{"disk", "squashfs", "iso"} {
		if !strings.Contains(r.output, m.Markers[k]) {
			missing = append(missing, k)
		}
	}
	if r.err == nil && len(missing) == 0 {
		return
	}
	t.Errorf("%s: guest after %s: error %v; markers missing from its console: %v\nconsole (last 4 KiB):\n%s",
		name, r.took.Round(time.Millisecond), r.err, missing, tail(r.output, 4096))
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
