package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
)

func TestCheckMountpoint(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := checkMountpoint(dir, log); err != nil || got != dir {
		t.Errorf("empty directory: %q, %v", got, err)
	}
	for _, bad := range []string{file, filepath.Join(dir, "absent"), "/proc"} {
		_, err := checkMountpoint(bad, log)
		var me mountpointError
		if !errors.As(err, &me) {
			t.Errorf("%s: %v, want a mountpointError", bad, err)
		}
	}
}

type oneByte struct{}

func (oneByte) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestCheckMountpointClearsDeadMount makes a dead FUSE mount (the
// connection aborted with MNT_FORCE while a file is open, so the mount
// stays, as after a daemon is killed) and checks that checkMountpoint
// clears it, says so, and leaves the directory usable, although a stat of
// the mount point still succeeds from the kernel's attribute cache.
func TestCheckMountpointClearsDeadMount(t *testing.T) {
	fixture.RequireFUSE(t)
	tree := &image.Tree{Files: []image.File{{Path: "amd64/default/kernel", Digest: digest.FromString("k"), Size: 4096}}}
	root := osfs.NewRoot(tree, func(digest.Digest, int64) osfs.BlobReader { return oneByte{} }, osfs.Options{})
	dir := t.TempDir()
	srv, err := osfs.Mount(dir, root, osfs.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	held, err := os.Open(filepath.Join(dir, "amd64/default/kernel"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	// Abort the connection; the open file keeps the mount in place.
	if err := syscall.Unmount(dir, syscall.MNT_FORCE); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("forced unmount with a file open: %v, want EBUSY", err)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("server still running after its connection was aborted")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs of the dead mount: %v, want ENOTCONN", err)
	}
	if _, ok := mountedAt(dir); !ok {
		t.Fatal("the dead mount is not in mountinfo")
	}

	var logs bytes.Buffer
	got, err := checkMountpoint(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("checkMountpoint: %v", err)
	}
	if got != dir {
		t.Errorf("checkMountpoint = %q, want %q", got, dir)
	}
	if !strings.Contains(logs.String(), "cleared a dead mount") {
		t.Errorf("no message about the cleared mount: %q", logs.String())
	}
	if _, ok := mountedAt(dir); ok {
		t.Error("still mounted after checkMountpoint")
	}
}
