package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUnsafeDir: a directory of the disk cache could be changed by another
// user (it is a symbolic link, belongs to someone else, or is writable by
// group or others). Chunks read from it could have been planted, and
// emptying its tmp/ could delete another user's files, so it is refused.
var ErrUnsafeDir = errors.New("unsafe disk cache directory")

// safeDir makes sure p is a directory only the effective user can change:
// it is created with mode 0700 when missing (with its parents when
// parents is set), and an existing one is checked without following a
// symbolic link.
func safeDir(p string, parents bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		mkdir := os.Mkdir
		if parents {
			mkdir = os.MkdirAll
		}
		if err := mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create disk cache directory %s: %w", p, err)
		}
		fi, err = os.Lstat(p)
	}
	if err != nil {
		return fmt.Errorf("disk cache directory %s: %w", p, err)
	}
	return checkDir(p, fi)
}

// checkDir refuses directory p, described by fi (from Lstat or Fstat, never
// Stat), if it is a symbolic link, not a directory, not owned by the
// effective user, or writable by group or others. The error names p, says
// what is wrong and what to do.
func checkDir(p string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link; give a real directory (not a link) as the cache directory", ErrUnsafeDir, p)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, p)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s belongs to uid %d, not to uid %d that runs osimagefs; chown it to uid %d, or use another directory", ErrUnsafeDir, p, st.Uid, os.Geteuid(), os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o); chmod go-w %s", ErrUnsafeDir, p, perm, p)
	}
	return nil
}

// emptyTmp removes what a process killed while writing left in dir
// (tmp/). It opens dir without following a symbolic link, checks the
// directory it opened, and unlinks each entry relative to it: unlinkat
// never follows a link, so neither a link planted in dir nor dir swapped
// for one after the check can turn the removals onto files elsewhere.
// Subdirectories (never made by the cache) are left alone.
func emptyTmp(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			fi, lerr := os.Lstat(dir)
			if lerr == nil {
				if cerr := checkDir(dir, fi); cerr != nil {
					return cerr
				}
			}
		}
		return fmt.Errorf("open disk cache directory %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("disk cache directory %s: %w", dir, err)
	}
	if err := checkDir(dir, fi); err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list disk cache directory %s: %w", dir, err)
	}
	for _, name := range names {
		_ = unix.Unlinkat(fd, name, 0)
	}
	return nil
}

// openChunk opens a chunk file for reading; a symbolic link in its place
// is refused (ELOOP) rather than followed.
func openChunk(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
}
