package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	osfs "github.com/osimagefs/osimagefs/fs"
)

// checkMountpoint returns the mount point, absolute and with symlinks
// resolved, if it can be used: it exists, is a directory, and nothing is
// mounted there. A dead FUSE mount left by a killed daemon ("transport
// endpoint is not connected") is cleared, with a message saying so.
func checkMountpoint(dir string, log *slog.Logger) (string, error) {
	abs, err := resolveMountpoint(dir)
	if err != nil {
		return "", err
	}
	if abs != dir {
		log.Debug("mount point resolved", "given", dir, "mountpoint", abs)
	}
	if err := clearDeadMounts(abs, log); err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", mountpointError{fmt.Errorf("mount point %s: %w", abs, err)}
	}
	if !st.IsDir() {
		return "", mountpointError{fmt.Errorf("mount point %s is not a directory", abs)}
	}
	if src, ok := mountedAt(abs); ok {
		return "", mountpointError{fmt.Errorf("mount point %s is already mounted (%s); unmount it first", abs, src)}
	}
	return abs, nil
}

// resolveMountpoint makes dir absolute and resolves its symlinks: the
// kernel mounts on the directory a symlink points to, and mountinfo, the
// "already mounted" check and the kernel read-ahead setting know only that
// path. A dead FUSE mount cannot be stat'ed once the kernel's cached
// attributes expire (ENOTCONN); it is a directory, not a symlink, so then
// only its parent is resolved and clearDeadMounts deals with it.
func resolveMountpoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", mountpointError{fmt.Errorf("mount point %s: %w", dir, err)}
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		var parent string
		if parent, err = filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			resolved = filepath.Join(parent, filepath.Base(abs))
		}
	}
	if err != nil {
		return "", mountpointError{fmt.Errorf("mount point %s: resolve symlinks: %w", abs, err)}
	}
	return resolved, nil
}

// probeTimeout bounds the liveness probe of a FUSE mount whose daemon
// may be alive but stuck.
const probeTimeout = 3 * time.Second

// clearDeadMounts detaches dead FUSE mounts at dir (a daemon that was
// killed leaves one; several if that happened repeatedly). A stat of the
// mount point does not tell: the kernel answers it from the attributes it
// cached while the daemon lived. statfs always asks the daemon, and fails
// with ENOTCONN (or ECONNABORTED after an abort) once it is gone. Live
// mounts, and mounts that are not FUSE, are left alone for checkMountpoint
// to refuse.
func clearDeadMounts(dir string, log *slog.Logger) error {
	for range 16 {
		src, ok := mountedAt(dir)
		if !ok || !strings.HasPrefix(src, "fuse") {
			return nil
		}
		if err := probe(dir); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
			return nil
		}
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return mountpointError{fmt.Errorf("mount point %s holds a dead FUSE mount (%s) that could not be cleared: %w", dir, src, err)}
		}
		log.Warn("cleared a dead mount left by a daemon that did not exit cleanly", "mountpoint", dir, "was", src)
	}
	return mountpointError{fmt.Errorf("mount point %s: too many dead mounts stacked on it", dir)}
}

// probe is statfs(dir), given up on after probeTimeout (a stuck daemon
// never answers): then it reports nil, i.e. "not dead".
func probe(dir string) error {
	done := make(chan error, 1)
	go func() {
		var st syscall.Statfs_t
		done <- syscall.Statfs(dir, &st)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(probeTimeout):
		return nil
	}
}

// mountedAt reports whether something is mounted exactly at dir, and what
// ("fstype source" of the visible mount).
func mountedAt(dir string) (string, bool) {
	ms, err := osfs.MountsAt(dir)
	if err != nil || len(ms) == 0 {
		return "", false
	}
	m := ms[len(ms)-1]
	return strings.TrimSpace(m.FSType + " " + m.Source), true
}

// unmount stops the server. It first tries a clean unmount, retrying for
// about a second while the mount is busy. If files are still open (readers
// in flight), it force-unmounts and detaches the mount point: MNT_FORCE
// aborts the FUSE connection, so every read in flight ends with an error
// (the kernel answers the readers with ECONNABORTED, go-fuse cancels the
// requests' contexts) and later reads of the open files fail with ENOTCONN,
// and MNT_DETACH removes the mount point from the namespace. Without
// MNT_FORCE, a lazy unmount alone would leave the daemon serving the open
// files for as long as anyone holds them. A daemon without CAP_SYS_ADMIN
// can only detach.
func unmount(srv *fuse.Server, dir string, log *slog.Logger) {
	var err error
	deadline := time.Now().Add(time.Second)
	for {
		if err = srv.Unmount(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Warn("mount point busy: aborting the reads in flight and detaching it", "mountpoint", dir, "err", err)
	ferr := syscall.Unmount(dir, syscall.MNT_FORCE|syscall.MNT_DETACH)
	if ferr == nil {
		return
	}
	log.Warn("forced unmount failed; detaching only, the daemon exits when the last open file is closed", "mountpoint", dir, "err", ferr)
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		log.Error("detach failed", "mountpoint", dir, "err", err)
	}
}
