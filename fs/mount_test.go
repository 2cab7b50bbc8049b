package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
)

func TestOpenRefusesWriting(t *testing.T) {
	layer := &fileNode{root: NewRoot(&image.Tree{}, nil, Options{}), file: image.File{Path: "a/disk.img", Size: 10, Digest: digest.FromString("x")}, blob: memBlob("0123456789")}
	doc := &fileNode{root: layer.root, file: image.File{Path: "a/manifest.json", Data: []byte("{}"), Size: 2}}
	for _, n := range []*fileNode{layer, doc} {
		for _, flags := range []int{syscall.O_WRONLY, syscall.O_RDWR, syscall.O_RDONLY | syscall.O_TRUNC, syscall.O_WRONLY | syscall.O_APPEND, syscall.O_RDONLY | syscall.O_APPEND} {
			if _, _, errno := n.Open(context.Background(), uint32(flags)); errno != syscall.EROFS {
				t.Errorf("%s: open with flags %#x: %v, want EROFS", n.file.Path, flags, errno)
			}
		}
		if _, _, errno := n.Open(context.Background(), syscall.O_RDONLY); errno != 0 {
			t.Errorf("%s: open read-only: %v", n.file.Path, errno)
		}
	}
}

func TestErrno(t *testing.T) {
	r := NewRoot(&image.Tree{}, nil, Options{})
	f := image.File{Path: "amd64/x/disk.img", Digest: digest.FromString("x")}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want syscall.Errno
	}{
		{"reader interrupted", cancelled, fmt.Errorf("wait for chunk: %w", context.Canceled), syscall.EINTR},
		{"fetch cancelled but reader not", context.Background(), context.Canceled, syscall.EIO},
		{"read timeout", context.Background(), context.DeadlineExceeded, syscall.EIO},
		{"registry error", context.Background(), errors.New("HTTP 500"), syscall.EIO},
		{"registry error after the reader left", cancelled, errors.New("HTTP 500"), syscall.EIO},
	}
	for _, tc := range tests {
		if got := r.errno(tc.ctx, "read", f, 0, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// memBlob is a BlobReader over bytes.
type memBlob []byte

func (m memBlob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// stuckBlob never answers: its reads wait for their context, and count
// how many ended that way.
type stuckBlob struct {
	waiting   atomic.Int64
	cancelled atomic.Int64
}

func (s *stuckBlob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	s.waiting.Add(1)
	<-ctx.Done()
	s.cancelled.Add(1)
	return 0, ctx.Err()
}

// requireFUSE skips unless this process can mount FUSE file systems.
func requireFUSE(t *testing.T) {
	t.Helper()
	fixture.RequireFUSE(t)
}

func testTree(blobs ...int64) *image.Tree {
	t := &image.Tree{Files: []image.File{
		{Path: "amd64/virtualization/manifest.json", Data: []byte(`{"schemaVersion":2}`), Size: 19},
	}}
	for i, size := range blobs {
		t.Files = append(t.Files, image.File{Path: fmt.Sprintf("amd64/virtualization/layer%d", i), Digest: digest.FromString(fmt.Sprint(i)), Size: size})
	}
	return t
}

// TestMountReadOnly mounts a tree and checks the mount's flags, the
// content, and that writing is refused.
func TestMountReadOnly(t *testing.T) {
	requireFUSE(t)
	content := bytes.Repeat([]byte("osimagefs"), 1000)
	root := NewRoot(testTree(int64(len(content))), func(digest.Digest, int64) BlobReader { return memBlob(content) }, Options{})
	dir := t.TempDir()
	srv, err := Mount(dir, root, MountOptions{Name: "osimagefs:test"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Wait()
	defer srv.Unmount()

	got, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/layer0"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read layer: %v (%d bytes)", err, len(got))
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "amd64/virtualization/manifest.json")); string(got) != `{"schemaVersion":2}` {
		t.Fatalf("manifest.json: %q", got)
	}
	if _, err := os.OpenFile(filepath.Join(dir, "amd64/virtualization/layer0"), os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("open O_RDWR: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v, want EROFS", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&0x1 == 0 { // ST_RDONLY
		t.Errorf("statfs flags %#x lack ST_RDONLY", st.Flags)
	}
	ms, err := MountsAt(dir)
	if err != nil || len(ms) != 1 {
		t.Fatalf("mounts at %s: %v, %v", dir, ms, err)
	}
	m := ms[0]
	if opts := "," + m.Options + ","; !strings.Contains(opts, ",ro,") || !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
		t.Errorf("mount options %s: want ro, nosuid, nodev", m.Options)
	}
	if super := "," + m.SuperOptions + ","; !strings.Contains(super, ",default_permissions,") || strings.Contains(super, ",allow_other,") {
		t.Errorf("super options %s: want default_permissions and no allow_other", m.SuperOptions)
	}
}

// TestForcedUnmountEndsReadsInFlight is what the daemon does on SIGTERM
// when readers hold files open: a forced, lazy unmount. It must end reads
// the file system is still working on (go-fuse cancels their contexts when
// the connection is aborted), fail the readers, and let the server stop.
func TestForcedUnmountEndsReadsInFlight(t *testing.T) {
	requireFUSE(t)
	blob := &stuckBlob{}
	root := NewRoot(testTree(64<<20), func(digest.Digest, int64) BlobReader { return blob }, Options{})
	dir := t.TempDir()
	srv, err := Mount(dir, root, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()

	const readers = 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(filepath.Join(dir, "amd64/virtualization/layer0"))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			_, err = f.ReadAt(make([]byte, 4096), int64(i)<<20)
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); blob.waiting.Load() < readers; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads reached the file system", blob.waiting.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Unmount(dir, syscall.MNT_FORCE|syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("readers still blocked 5 s after the forced unmount")
	}
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("a read in flight succeeded")
		}
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("server still running 5 s after the forced unmount")
	}
	if n := blob.cancelled.Load(); n != readers {
		t.Errorf("%d of %d reads in flight saw their context cancelled", n, readers)
	}
}
