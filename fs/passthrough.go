package fs

import (
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/opencontainers/go-digest"
)

// Passthrough: a layer whose blob is complete and verified in the disk
// cache is read by the kernel straight from the cache file (FUSE
// passthrough, Linux 6.9+), with no READ request reaching the daemon. This
// file is the one place that decides when.
//
// The kernel may refuse: an older kernel, a daemon without CAP_SYS_ADMIN,
// a cache on a stacked filesystem. go-fuse then silently serves every
// open through the daemon. So the mount probes once, by registering a
// file of the cache with the kernel, and reads go through the daemon when
// it refuses, with one warning for the mount; a READ that arrives on a
// file handed to the kernel means it refused after all, and says so once
// too.
//
// The kernel holds an inode either in passthrough mode or in cached mode,
// and fails (EIO) an open that asks for the other while files of the
// inode are open: each layer counts its opens of each kind (fileNode.mode),
// and an open follows the kind already open.

// Backing gives the files the kernel may read layers from; cache.Disk is
// one.
type Backing interface {
	// OpenPinned opens blob d's cache file read-only, pinned against
	// eviction for as long as the file (or the kernel's hold on it) lives,
	// when the blob is complete, verified and unchanged; nil when not.
	OpenPinned(d digest.Digest) (*os.File, error)
	// ProbeFile opens a regular file of the cache, to ask the kernel
	// whether it accepts such files.
	ProbeFile() (*os.File, error)
}

// backingRegistrar registers files with the kernel for passthrough;
// *fuse.Server is one.
type backingRegistrar interface {
	RegisterBackingFd(*fuse.BackingMap) (int32, syscall.Errno)
	UnregisterBackingFd(id int32) syscall.Errno
}

// passthrough is the mount's decision: off until the probe succeeded, and
// off again for good once the kernel refused.
type passthrough struct {
	backing Backing // nil: never
	log     *slog.Logger
	on      atomic.Bool
	warned  sync.Once
	// probed is closed once probe has decided. The mount serves before
	// gofs.Mount returns, so an open may come first; it waits for this.
	probed chan struct{}
}

func newPassthrough(backing Backing, log *slog.Logger) passthrough {
	return passthrough{backing: backing, log: log, probed: make(chan struct{})}
}

// probe asks the kernel, once, whether it accepts files of the cache for
// passthrough, and turns passthrough on when it does.
func (p *passthrough) probe(srv backingRegistrar) {
	defer close(p.probed)
	if p.backing == nil {
		return
	}
	f, err := p.backing.ProbeFile()
	if err != nil {
		p.refuse("no cache file to offer the kernel", err)
		return
	}
	defer f.Close()
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(f.Fd())})
	if errno != 0 {
		p.refuse("the kernel refused a cache file", errno)
		return
	}
	if errno := srv.UnregisterBackingFd(id); errno != 0 {
		p.log.Debug("unregister the passthrough probe", "err", errno)
	}
	p.on.Store(true)
	p.log.Debug("FUSE passthrough on: layers complete in the disk cache are read by the kernel")
}

// refuse turns passthrough off for the rest of the mount, saying so once.
func (p *passthrough) refuse(why string, err error) {
	p.on.Store(false)
	p.warned.Do(func() {
		p.log.Warn("FUSE passthrough unavailable; layers complete in the disk cache are read through the daemon",
			"reason", why, "err", err)
	})
}

// open returns blob d's pinned cache file when the kernel may be handed
// it, else nil.
func (p *passthrough) open(d digest.Digest) *os.File {
	if p.backing == nil {
		return nil
	}
	<-p.probed
	if !p.on.Load() {
		return nil
	}
	f, err := p.backing.OpenPinned(d)
	if err != nil {
		p.log.Debug("not passed through", "digest", d, "err", err)
		return nil
	}
	return f
}

// mode counts a layer's open files of each kind.
type mode struct {
	mu     sync.Mutex
	cached int // opens served by the daemon
	passed int // opens handed to the kernel (or that would have been)
}

// passHandle is an open layer the kernel reads from file, the pinned cache
// file (nil when another open of the inode handed the kernel one already,
// or none could be had: go-fuse then reuses the one registered, or serves
// it through the daemon).
type passHandle struct {
	handle
	file   *os.File
	handed atomic.Bool // PassthroughFd gave the kernel file
}

// PassthroughFd hands the pinned file to go-fuse, which registers it with
// the kernel (gofs.FilePassthroughFder).
func (h *passHandle) PassthroughFd() (int, bool) {
	if h.file == nil {
		return 0, false
	}
	h.handed.Store(true)
	return int(h.file.Fd()), true
}
