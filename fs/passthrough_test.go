package fs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// fakeBacking hands out a file of its own when ready is set.
type fakeBacking struct {
	dir   string
	ready bool
	opens int
}

func (b *fakeBacking) OpenPinned(digest.Digest) (*os.File, error) {
	if !b.ready {
		return nil, nil
	}
	b.opens++
	return os.Open(filepath.Join(b.dir, "data"))
}

func (b *fakeBacking) ProbeFile() (*os.File, error) { return os.Open(filepath.Join(b.dir, "data")) }

// fakeKernel answers registrations with errno.
type fakeKernel struct {
	errno      syscall.Errno
	registered int
}

func (k *fakeKernel) RegisterBackingFd(*fuse.BackingMap) (int32, syscall.Errno) {
	if k.errno != 0 {
		return 0, k.errno
	}
	k.registered++
	return 1, 0
}

func (k *fakeKernel) UnregisterBackingFd(int32) syscall.Errno { k.registered--; return 0 }

// countingObserver counts passthrough opens and READs.
type countingObserver struct {
	silent
	passed, reads int
}

func (c *countingObserver) PassthroughOpened(image.File) { c.passed++ }
func (c *countingObserver) ReadRequest(image.File)       { c.reads++ }

func newPassthroughNode(t *testing.T, kernel *fakeKernel) (*fileNode, *fakeBacking, *countingObserver, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b := &fakeBacking{dir: dir}
	obs := &countingObserver{}
	r := NewRoot(&image.Tree{}, nil, Options{Passthrough: b, Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	r.pt.probe(kernel)
	n := &fileNode{root: r, file: image.File{Path: "a/disk.img", Size: 10, Digest: digest.FromString("x")}, blob: memBlob("0123456789")}
	return n, b, obs, &logs
}

// TestPassthroughOpens: an open follows the kind of open already on the
// inode, as the kernel requires (it fails an open of the other kind with
// EIO): opens through the daemon keep later ones there even once the blob
// could be handed over; opens handed over make later ones handed over
// too, without a second pinned file.
func TestPassthroughOpens(t *testing.T) {
	n, b, obs, _ := newPassthroughNode(t, &fakeKernel{})
	ctx := context.Background()
	open := func() any {
		t.Helper()
		fh, _, errno := n.Open(ctx, syscall.O_RDONLY)
		if errno != 0 {
			t.Fatal(errno)
		}
		return fh
	}
	release := func(fh any) {
		t.Helper()
		switch h := fh.(type) {
		case *handle:
			h.Release(ctx)
		case *passHandle:
			h.Release(ctx)
		}
	}

	daemon := open() // the blob is not ready
	if _, ok := daemon.(*handle); !ok {
		t.Fatalf("an open of a blob not ready is %T, want a handle served by the daemon", daemon)
	}
	b.ready = true
	if fh, ok := open().(*handle); !ok {
		t.Fatal("an open while another is served by the daemon was handed to the kernel")
	} else {
		release(fh)
	}
	release(daemon)

	first := open()
	ph, ok := first.(*passHandle)
	if !ok || ph.file == nil {
		t.Fatalf("an open of a ready blob with nothing else open is %T, want a pinned file handed over", first)
	}
	if fd, ok := ph.PassthroughFd(); !ok || fd != int(ph.file.Fd()) {
		t.Fatal("PassthroughFd does not hand over the pinned file")
	}
	b.ready = false // however the blob fares now, the kernel has it
	second := open()
	if sh, ok := second.(*passHandle); !ok || sh.file != nil {
		t.Fatalf("an open while another is handed over is %T, want one handed over on the same backing file", second)
	}
	if b.opens != 1 || obs.passed != 2 {
		t.Errorf("%d pinned files opened, %d passthrough opens counted; want 1 and 2", b.opens, obs.passed)
	}
	release(first)
	release(second)
	if n.mode.cached != 0 || n.mode.passed != 0 {
		t.Errorf("after every release: %d served by the daemon, %d handed over still open", n.mode.cached, n.mode.passed)
	}
	if _, err := ph.file.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the daemon's copy of the pinned file is still open after its release: %v", err)
	}
}

// TestPassthroughRefused: a kernel that refuses the probe gets every open
// through the daemon and one warning; a READ on a file handed over (the
// kernel refused it after all) turns passthrough off, with one warning.
func TestPassthroughRefused(t *testing.T) {
	ctx := context.Background()
	n, b, obs, logs := newPassthroughNode(t, &fakeKernel{errno: syscall.EPERM})
	b.ready = true
	for range 3 {
		fh, _, _ := n.Open(ctx, syscall.O_RDONLY)
		if _, ok := fh.(*handle); !ok {
			t.Fatalf("with passthrough refused an open is %T", fh)
		}
	}
	if c := strings.Count(logs.String(), "passthrough unavailable"); c != 1 || obs.passed != 0 || b.opens != 0 {
		t.Fatalf("refused probe: %d warnings, %d passthrough opens, %d pinned files; want 1, 0, 0:\n%s", c, obs.passed, b.opens, logs)
	}

	n, b, obs, logs = newPassthroughNode(t, &fakeKernel{})
	b.ready = true
	fh, _, _ := n.Open(ctx, syscall.O_RDONLY)
	ph, ok := fh.(*passHandle)
	if !ok {
		t.Fatalf("open is %T", fh)
	}
	ph.PassthroughFd()
	dest := make([]byte, 4)
	for range 2 {
		res, errno := n.Read(ctx, ph, dest, 2)
		if errno != 0 {
			t.Fatal(errno)
		}
		if got, _ := res.Bytes(dest); string(got) != "2345" {
			t.Fatalf("READ on a refused file gave %q", got)
		}
	}
	if c := strings.Count(logs.String(), "passthrough unavailable"); c != 1 || obs.reads != 2 {
		t.Fatalf("READs on a file handed over: %d warnings, %d READs counted; want 1 and 2:\n%s", c, obs.reads, logs)
	}
	ph.Release(ctx)
	if fh, _, _ := n.Open(ctx, syscall.O_RDONLY); !isDaemonHandle(fh) {
		t.Fatalf("after the kernel refused, an open is %T", fh)
	}
}

func isDaemonHandle(fh any) bool { _, ok := fh.(*handle); return ok }
