package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
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

// checkTree holds everything below dir (the blob directories) to the rule
// of checkDir, and accepts nothing but directories and regular files: a
// symbolic link there would make a read or a write follow it out of the
// cache.
func checkTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := de.Info() // lstat: WalkDir follows no link
		if err != nil {
			return nil // removed meanwhile
		}
		switch {
		case de.IsDir():
			return checkDir(p, info)
		case info.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link, which the cache never makes; remove it", ErrUnsafeDir, p)
		case !info.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file (mode %s); remove it", ErrUnsafeDir, p, info.Mode())
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrUnsafeDir) {
		return fmt.Errorf("scan disk cache %s: %w", dir, err)
	}
	return err
}
