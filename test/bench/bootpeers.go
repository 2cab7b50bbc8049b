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

	"golang.org/x/sync/errgroup"
)

// The peers of the boot scenario: ways to boot the guest from the
// registry without osimagefs. Each returns the guest's source and a
// function that tears down what it started.

// bootBlobs are the blob digests of the boot image, by tree name.
type bootBlobs map[string]string

// curlFiles downloads the named blobs from host into dir with one curl
// each, all at once, and returns their paths by name.
func curlFiles(ctx context.Context, host string, blobs bootBlobs, dir string, names ...string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	var g errgroup.Group
	for _, n := range names {
		p := filepath.Join(dir, n)
		paths[n] = p
		url := blobURLIn(host, bootRepo, blobs[n])
		g.Go(func() error {
			out, err := command(ctx, "curl", "-sSf", "-o", p, url).CombinedOutput()
			if err != nil {
				return fmt.Errorf("curl %s: %w: %s", url, err, strings.TrimSpace(string(out)))
			}
			return nil
		})
	}
	return paths, g.Wait()
}

// bootFiles are the kernel, initramfs and cmdline, fetched first by the
// peers that read only disks from the registry.
var bootFiles = []string{"kernel", "initramfs", "cmdline"}

// bootDisks are the guest's disks, vda, vdb, vdc.
var bootDisks = [3]string{"disk.img", "root.squashfs", "image.iso"}

// qemuCurlSource boots with QEMU's curl block driver (qemu-block-extra)
// reading each disk's blob URL; the kernel, initramfs and cmdline are
// fetched with curl first.
func qemuCurlSource(ctx context.Context, host string, blobs bootBlobs, dir string) (guestSource, func(), error) {
	f, err := curlFiles(ctx, host, blobs, dir, bootFiles...)
	if err != nil {
		return guestSource{}, nil, err
	}
	src := guestSource{kernel: f["kernel"], initramfs: f["initramfs"], cmdline: f["cmdline"]}
	for i, n := range bootDisks {
		src.drives[i] = "if=virtio,format=raw,readonly=on,file.driver=http,file.url=" + blobURLIn(host, bootRepo, blobs[n])
	}
	return src, func() {}, nil
}

// nbdkitSource boots from one nbdkit per disk: its curl plugin on the blob
// URL behind --filter=readahead --filter=cache, served on a Unix socket,
// which QEMU reads over NBD; the kernel, initramfs and cmdline are fetched
// with curl first.
func nbdkitSource(ctx context.Context, host string, blobs bootBlobs, dir string) (guestSource, func(), error) {
	var procs []*exec.Cmd
	stop := func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
	}
	var g errgroup.Group
	var f map[string]string
	g.Go(func() (err error) {
		f, err = curlFiles(ctx, host, blobs, dir, bootFiles...)
		return err
	})
	var src guestSource
	for i, n := range bootDisks {
		sock := filepath.Join(dir, "nbd-"+n+".sock")
		cmd := exec.Command("nbdkit", "-f", "-r", "-U", sock, "--filter=readahead", "--filter=cache",
			"curl", "url="+blobURLIn(host, bootRepo, blobs[n]))
		cmd.Env = append(os.Environ(), "TMPDIR="+dir) // the cache filter's file
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		logf, err := os.Create(sock + ".log")
		if err != nil {
			stop()
			return guestSource{}, nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			stop()
			return guestSource{}, nil, fmt.Errorf("start nbdkit: %w", err)
		}
		logf.Close()
		procs = append(procs, cmd)
		src.drives[i] = "if=virtio,format=raw,readonly=on,file.driver=nbd,file.server.type=unix,file.server.path=" + sock
		g.Go(func() error { return waitFor(ctx, sock, 30*time.Second) })
	}
	if err := g.Wait(); err != nil {
		stop()
		return guestSource{}, nil, err
	}
	src.kernel, src.initramfs, src.cmdline = f["kernel"], f["initramfs"], f["cmdline"]
	return src, stop, nil
}

// pullSource downloads every blob (one curl each, all at once), then
// boots from the local files.
func pullSource(ctx context.Context, host string, blobs bootBlobs, dir string) (guestSource, func(), error) {
	f, err := curlFiles(ctx, host, blobs, dir, append(bootFiles, bootDisks[:]...)...)
	if err != nil {
		return guestSource{}, nil, err
	}
	return guestSource{kernel: f["kernel"], initramfs: f["initramfs"], cmdline: f["cmdline"],
		drives: [3]string{fileDrive(f["disk.img"], true), fileDrive(f["root.squashfs"], false), fileDrive(f["image.iso"], false)}}, func() {}, nil
}

// waitFor waits until path exists.
func waitFor(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
