package fs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestMountFailureExplained: a failed mount says what is wrong, FUSE or
// the mount point, whatever go-fuse's own error was.
func TestMountFailureExplained(t *testing.T) {
	tmp := t.TempDir()
	device := filepath.Join(tmp, "fuse")
	if err := os.WriteFile(device, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(tmp, "absent")
	found := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	onlyOld := func(name string) (string, error) {
		if strings.HasSuffix(name, "/fusermount") {
			return name, nil
		}
		return "", exec.ErrNotFound
	}
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	writable := func(string, uint32) error { return nil }
	denied := func(string, uint32) error { return syscall.EACCES }
	gofuse := errors.New("fusermount exited with code 256")

	tests := []struct {
		name  string
		sys   fuseSystem
		dir   string
		class error // nil: unclassified
		say   string
	}{
		{"root, device missing", fuseSystem{true, absent, found, writable}, mnt, ErrFUSEUnavailable, "cannot open " + absent},
		{"root, device not openable", fuseSystem{true, tmp, found, writable}, mnt, ErrFUSEUnavailable, "cannot open " + tmp},
		{"root, no fusermount: not needed", fuseSystem{true, device, none, writable}, mnt, nil, ""},
		{"root, mount point not writable: not needed", fuseSystem{true, device, found, denied}, mnt, nil, ""},
		{"root, mount point missing", fuseSystem{true, device, found, writable}, absent, ErrMountpoint, "no such file"},
		{"root, mount point not a directory", fuseSystem{true, device, found, writable}, device, ErrMountpoint, "not a directory"},
		{"user, device missing", fuseSystem{false, absent, found, writable}, mnt, ErrFUSEUnavailable, absent + " is missing"},
		{"user, no fusermount3", fuseSystem{false, device, none, writable}, mnt, ErrFUSEUnavailable, "fusermount3 not found"},
		{"user, only fusermount", fuseSystem{false, device, onlyOld, writable}, mnt, nil, ""},
		{"user, mount point not writable", fuseSystem{false, device, found, denied}, mnt, ErrMountpoint, "no write access to " + mnt},
		{"user, mount point not a directory", fuseSystem{false, device, found, writable}, device, ErrMountpoint, "not a directory"},
		{"user, nothing wrong that can be seen", fuseSystem{false, device, found, writable}, mnt, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sys.explain(tc.dir, gofuse)
			if !errors.Is(err, gofuse) {
				t.Errorf("%v does not wrap go-fuse's error", err)
			}
			for _, class := range []error{ErrFUSEUnavailable, ErrMountpoint} {
				if got := errors.Is(err, class); got != (class == tc.class) {
					t.Errorf("%v: errors.Is(%v) = %v", err, class, got)
				}
			}
			if !strings.Contains(err.Error(), tc.say) || !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("%q does not say %q and name the mount point", err, tc.say)
			}
		})
	}
}

// TestMountNotADirectory mounts on a file, for real: it is refused as
// the mount point's fault, and nothing is left mounted there.
func TestMountNotADirectory(t *testing.T) {
	requireFUSE(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root := NewRoot(testTree(1), func(digest.Digest, int64) BlobReader { return memBlob("x") }, Options{})
	srv, err := Mount(file, root, MountOptions{})
	defer syscall.Unmount(file, syscall.MNT_DETACH)
	if err == nil {
		srv.Unmount()
		t.Fatal("mounted on a file")
	}
	if !errors.Is(err, ErrMountpoint) || errors.Is(err, ErrFUSEUnavailable) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("mount on a file: %v, want ErrMountpoint saying it is not a directory", err)
	}
	if ms, err := MountsAt(file); err != nil || len(ms) != 0 {
		t.Fatalf("mounts left at %s: %v, %v", file, ms, err)
	}
}
