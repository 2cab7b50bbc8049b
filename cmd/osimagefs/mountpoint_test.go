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
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
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

// TestCheckMountpointSymlink: a symlinked mount point is resolved to the
// directory it points to, so a symlink to a directory that is already a
// mount point is refused like the directory itself.
func TestCheckMountpointSymlink(t *testing.T) {
	fixture.RequireRoot(t, "mount a tmpfs")
	log := slog.New(slog.DiscardHandler)
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(base, "empty")
	mounted := filepath.Join(base, "mounted")
	for _, d := range []string{empty, mounted} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mount("tmpfs", mounted, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(mounted, syscall.MNT_DETACH)
	for name, target := range map[string]string{"to-empty": empty, "to-mounted": mounted, "to-link": filepath.Join(base, "to-mounted")} {
		if err := os.Symlink(target, filepath.Join(base, name)); err != nil {
			t.Fatal(err)
		}
	}

	if got, err := checkMountpoint(filepath.Join(base, "to-empty"), log); err != nil || got != empty {
		t.Errorf("symlink to an empty directory: %q, %v; want %q", got, err, empty)
	}
	for _, link := range []string{"to-mounted", "to-link"} {
		t.Run(link, func(t *testing.T) {
			_, err := checkMountpoint(filepath.Join(base, link), log)
			var me mountpointError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), "already mounted") {
				t.Fatalf("symlink to a mount point: %v, want a mountpointError saying it is already mounted", err)
			}
			if !strings.Contains(err.Error(), mounted) {
				t.Errorf("the error %q does not name the resolved path %s", err, mounted)
			}
		})
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
