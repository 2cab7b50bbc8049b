package fs

import (
	"syscall"
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
	// Name is shown as the mount's source in /proc/mounts (the file
	// system type is always fuse.osimagefs); default "osimagefs".
	Name string
}

// cacheTimeout is how long the kernel may cache entries and attributes: the
// tree never changes during a mount.
const cacheTimeout = time.Hour

// kernelReadAhead is the kernel's read-ahead window for the mount: large
// enough that a sequential reader sends 1 MiB FUSE reads.
const kernelReadAhead = 4 << 20

// Mount mounts root at dir and returns the running server; call Wait on it
// to serve until unmounted, or Unmount to stop. A failure that is FUSE's
// or the mount point's is marked ErrFUSEUnavailable or ErrMountpoint.
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
		// Mode 0000 inside an image (/etc/shadow) stays 0000.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			AllowOther:    o.AllowOther,
			FsName:        name,
			Name:          "osimagefs",
			Options:       []string{"ro", "default_permissions"},
			MaxBackground: 64,
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
			DirectMount:   true,
			// "ro" among the options only makes the superblock read-only;
			// MS_RDONLY also makes the mount itself read-only, so that
			// findmnt, mount and /proc/self/mountinfo say "ro". nosuid
			// and nodev are go-fuse's (and fusermount's) defaults.
			DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
			Debug:            o.Debug,
			// Files answer the user.osimagefs.* attributes (xattr.go);
			// security labels and ACLs are answered "none" by go-fuse.
			IgnoreSecurityLabels: true,
			// Replies are bytes in memory, never file descriptors (the
			// kernel reads passed-through files itself), so there is
			// nothing to splice; and go-fuse's attempt fails
			// (and logs "trySplice: ... max pipe size") on every 1 MiB
			// read, because header plus data exceed the 1 MiB pipe.
			DisableSplice: true,
		},
	}
	if err := checkDir(dir, nil); err != nil {
		return nil, err
	}
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		return nil, hostFUSE().explain(dir, err)
	}
	root.pt.probe(srv)
	if err := setKernelReadAhead(dir, kernelReadAhead); err != nil {
		root.log.Debug("kernel read-ahead left at its default", "err", err)
	}
	return srv, nil
}
