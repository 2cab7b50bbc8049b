package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// usage is the bytes of chunks present or being written in the whole cache
// directory, one counter that every process maps shared (root/usage) and
// changes atomically: before writing a chunk, and after evicting one. A
// process killed in between leaves it off by a chunk; every eviction pass
// counts afresh and stores the true figure. Beside it, at offset 16, the
// bytes of pinned blobs (pin.go) the last pass found, and at 24 when (Unix
// nanoseconds): for pinsFresh after that pass they are allowed on top of
// the limit, so that writers do not start a pass for every chunk while a
// pinned blob keeps the cache over it, and a pin gone stops counting soon
// (an older osimagefs leaves both 0).
type usage struct {
	f   *os.File
	mem []byte
}

const usageMagic = "OSIFSUS1"

// openUsage maps root/usage, creating it (whole, through a link, so no
// process ever maps a short one) when missing. fresh reports that this
// call created it, so the cache's contents are not counted yet.
func openUsage(root, tmp string) (u *usage, fresh bool, err error) {
	p := filepath.Join(root, "usage")
	f, err := os.OpenFile(p, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		wd, merr := os.MkdirTemp(tmp, "usage-")
		if merr != nil {
			return nil, false, fmt.Errorf("create %s: %w", p, merr)
		}
		work := filepath.Join(wd, "usage")
		if err := writeAllocated(work, []byte(usageMagic), 4096); err != nil {
			os.RemoveAll(wd)
			return nil, false, fmt.Errorf("create %s: %w", p, err)
		}
		lerr := os.Link(work, p)
		_ = os.RemoveAll(wd)
		if lerr != nil && !errors.Is(lerr, fs.ErrExist) {
			return nil, false, fmt.Errorf("create %s: %w", p, lerr)
		}
		fresh = lerr == nil
		f, err = os.OpenFile(p, os.O_RDWR|unix.O_NOFOLLOW, 0)
	}
	if errors.Is(err, syscall.ELOOP) {
		return nil, false, fmt.Errorf("%w: %s is a symbolic link, which the cache never makes; remove it", ErrUnsafeDir, p)
	}
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", p, err)
	}
	head := make([]byte, 16)
	if st, serr := f.Stat(); serr != nil || st.Size() != 4096 || !st.Mode().IsRegular() {
		f.Close()
		return nil, false, fmt.Errorf("%w: %s is not a usage counter of this osimagefs version; remove it", ErrUnsafeDir, p)
	}
	if _, err := f.ReadAt(head, 0); err != nil || string(head[:8]) != usageMagic {
		f.Close()
		return nil, false, fmt.Errorf("%w: %s is not a usage counter of this osimagefs version; remove it", ErrUnsafeDir, p)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("map %s: %w", p, err)
	}
	return &usage{f: f, mem: mem}, fresh, nil
}

func (u *usage) counter() *atomic.Int64 { return (*atomic.Int64)(unsafe.Pointer(&u.mem[8])) }
func (u *usage) pins() *atomic.Int64    { return (*atomic.Int64)(unsafe.Pointer(&u.mem[16])) }
func (u *usage) pinsAt() *atomic.Int64  { return (*atomic.Int64)(unsafe.Pointer(&u.mem[24])) }

func (u *usage) used() int64 { return u.counter().Load() }
func (u *usage) add(n int64) { u.counter().Add(n) }
func (u *usage) set(n int64) { u.counter().Store(n) }

// pinsFresh is how long the pinned bytes an eviction pass found are
// taken as still pinned: while pins keep the cache over its limit, writers
// start a pass about this often.
const pinsFresh = time.Second

// pinned is the bytes of pinned blobs the last eviction pass found, 0 once
// that pass is older than pinsFresh.
func (u *usage) pinned() int64 {
	if time.Since(time.Unix(0, u.pinsAt().Load())) > pinsFresh {
		return 0
	}
	return max(0, u.pins().Load())
}

// setPinned stores what a pass found pinned.
func (u *usage) setPinned(n int64) {
	u.pins().Store(n)
	u.pinsAt().Store(time.Now().UnixNano())
}
func (u *usage) close() { _ = unix.Munmap(u.mem); u.f.Close() }
