package fs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// The classes of a failed Mount, reachable with errors.Is.
var (
	// ErrFUSEUnavailable: this process cannot use FUSE at all: /dev/fuse
	// is missing or cannot be opened, or, when not root, fusermount3 is
	// not installed.
	ErrFUSEUnavailable = errors.New("FUSE unavailable")
	// ErrMountpoint: the mount point itself cannot be mounted on.
	ErrMountpoint = errors.New("mount point unusable")
)

// fuseSystem is what a mount needs from the system. go-fuse mounts with
// mount(2) on /dev/fuse when root, and otherwise (or when that fails)
// through the setuid helper fusermount3 (or fusermount), so its error is
// often only "fusermount exited with code 256" whatever the cause.
type fuseSystem struct {
	root     bool                         // mount(2) is allowed
	device   string                       // /dev/fuse
	lookPath func(string) (string, error) // finds the fusermount helpers
	access   func(path string, mode uint32) error
}

// hostFUSE is the system this process runs on.
func hostFUSE() fuseSystem {
	return fuseSystem{root: os.Geteuid() == 0, device: "/dev/fuse", lookPath: exec.LookPath, access: unix.Access}
}

// explain says why mounting at dir failed with err: it checks, in this
// order, the FUSE device, the fusermount helper (needed unless root) and
// the mount point (a directory, writable by the user unless root), and
// wraps err in the class of the
// first that is wrong. A failure none of them explains stays unclassified.
func (s fuseSystem) explain(dir string, err error) error {
	if s.root {
		// mount(2) needs to open the device read-write.
		f, oerr := os.OpenFile(s.device, os.O_RDWR, 0)
		if oerr != nil {
			return classified{ErrFUSEUnavailable, fmt.Sprintf("cannot open %s (is the fuse module loaded, and the device visible in this container?): %v", s.device, oerr), dir, err}
		}
		f.Close()
	} else if _, serr := os.Stat(s.device); serr != nil {
		// fusermount3 opens the device with its own privileges: only
		// its absence is this process's concern.
		return classified{ErrFUSEUnavailable, fmt.Sprintf("%s is missing (is the fuse module loaded?): %v", s.device, serr), dir, err}
	}
	if !s.root && !s.hasFusermount() {
		return classified{ErrFUSEUnavailable, "fusermount3 not found in PATH (install fuse3; it is needed to mount without root)", dir, err}
	}
	if derr := checkDir(dir, err); derr != nil {
		return derr
	}
	if !s.root {
		if aerr := s.access(dir, unix.W_OK); aerr != nil {
			return classified{ErrMountpoint, fmt.Sprintf("no write access to %s: %v", dir, aerr), dir, err}
		}
	}
	return fmt.Errorf("mount at %s: %w", dir, err)
}

// checkDir returns an ErrMountpoint (wrapping err, the mount's error if
// any) unless dir is a directory. FUSE mounts on a file too, but the tree's root is a
// directory: go-fuse would fail only after mounting, and leave the mount.
func checkDir(dir string, err error) error {
	st, serr := os.Stat(dir)
	if serr != nil {
		return classified{ErrMountpoint, serr.Error(), dir, err}
	}
	if !st.IsDir() {
		return classified{ErrMountpoint, dir + " is not a directory", dir, err}
	}
	return nil
}

// hasFusermount reports whether go-fuse finds a helper: fusermount3 or
// fusermount, in PATH or /bin.
func (s fuseSystem) hasFusermount() bool {
	for _, name := range []string{"fusermount3", "/bin/fusermount3", "fusermount", "/bin/fusermount"} {
		if _, err := s.lookPath(name); err == nil {
			return true
		}
	}
	return false
}

// classified is a mount failure with its class and what is wrong; it
// unwraps to both the class and go-fuse's error (nil when the mount was
// not tried).
type classified struct {
	class  error
	reason string
	dir    string
	err    error
}

func (c classified) Error() string {
	if c.err == nil {
		return fmt.Sprintf("%v: %s", c.class, c.reason)
	}
	return fmt.Sprintf("%v: %s (mount at %s: %v)", c.class, c.reason, c.dir, c.err)
}

func (c classified) Unwrap() []error { return []error{c.class, c.err} }
