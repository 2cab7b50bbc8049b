package fs

import (
	"fmt"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// MountOptions configure Mount. The zero value is a private, read-only mount.
type MountOptions struct {
	// AllowOther lets other users read the mount (FUSE allow_other).
	AllowOther bool
	// Debug logs every FUSE request to stderr (go-fuse's own logging).
	Debug bool
	// Name is shown as the mount's source in /proc/mounts; default "osimagefs".
	Name string
}

// cacheTimeout is how long the kernel may cache entries and attributes: the
// tree never changes during a mount.
const cacheTimeout = time.Hour

// kernelReadAhead is the kernel's read-ahead window for the mount: large
// enough that a sequential reader sends 1 MiB FUSE reads.
const kernelReadAhead = 4 << 20

// Mount mounts root at dir and returns the running server; call Wait on it
// to serve until unmounted, or Unmount to stop.
func Mount(dir string, root *Root, o MountOptions) (*fuse.Server, error) {
	timeout := cacheTimeout
	name := o.Name
	if name == "" {
		name = "osimagefs"
	}
	opts := &gofs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		MountOptions: fuse.MountOptions{
			AllowOther:    o.AllowOther,
			FsName:        name,
			Name:          "osimagefs",
			Options:       []string{"ro", "default_permissions"},
			MaxBackground: 64,
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			DirectMount:   true,
			Debug:         o.Debug,
			DisableXAttrs: true,
		},
	}
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount at %s: %w", dir, err)
	}
	if err := setKernelReadAhead(dir, kernelReadAhead); err != nil {
		root.log.Debug("kernel read-ahead left at its default", "err", err)
	}
	return srv, nil
}
