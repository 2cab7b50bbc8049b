package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on root/lock and writes
// our pid into it. The lock dies with the process, even on SIGKILL. A
// symbolic link in place of the lock file is refused, not followed (the
// pid is written over what the file held).
func lockDir(root string) (*os.File, error) {
	p := filepath.Join(root, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symbolic link; remove it", ErrUnsafeDir, p)
	}
	if err != nil {
		return nil, fmt.Errorf("open cache lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(p); rerr == nil && strings.TrimSpace(string(b)) != "" {
				holder = "pid " + strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%w: %s is locked by %s; give this mount another --cache-dir, or --cache-dir=none", ErrCacheBusy, root, holder)
		}
		return nil, fmt.Errorf("lock cache %s: %w", root, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
