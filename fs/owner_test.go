package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/opencontainers/go-digest"
)

// TestMountOwner mounts a tree and checks that the root, a directory and a
// file all report the configured owner, and the daemon's effective user and
// group when none is configured.
func TestMountOwner(t *testing.T) {
	requireFUSE(t)
	tests := []struct {
		name  string
		owner *fuse.Owner
		want  fuse.Owner
	}{
		{"configured", &fuse.Owner{Uid: 4242, Gid: 4343}, fuse.Owner{Uid: 4242, Gid: 4343}},
		{"default: the effective user", nil, fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := NewRoot(testTree(10), func(digest.Digest, int64) BlobReader { return memBlob("0123456789") }, Options{Owner: tc.owner})
			dir := t.TempDir()
			srv, err := Mount(dir, root, MountOptions{})
			if err != nil {
				t.Fatal(err)
			}
			go srv.Wait()
			defer srv.Unmount()
			for _, p := range []string{"", "amd64", "amd64/virtualization", "amd64/virtualization/layer0", "amd64/virtualization/manifest.json"} {
				var st syscall.Stat_t
				if err := syscall.Stat(filepath.Join(dir, p), &st); err != nil {
					t.Fatal(err)
				}
				if st.Uid != tc.want.Uid || st.Gid != tc.want.Gid {
					t.Errorf("/%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, tc.want.Uid, tc.want.Gid)
				}
			}
		})
	}
}
