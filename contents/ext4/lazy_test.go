package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
)

// TestLazy counts what opening an image, listing its root and reading one
// small file read, against the image size.
func TestLazy(t *testing.T) {
	for _, bs := range []string{"1024", "4096"} {
		t.Run(bs, func(t *testing.T) { testLazy(t, bs) })
	}
}

func testLazy(t *testing.T, blockSize string) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("osimage\n"), 0o644))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
	img := filepath.Join(t.TempDir(), "img")
	const size = 256 << 20
	mkfs(t, src, img, size, "-b", blockSize)
	fs, r := openImage(t, img, node.Options{})
	ctx := context.Background()
	opened, openCalls := r.BytesAsked(), r.Reads()
	ents, err := fs.ReadDir(ctx, fs.Root())
	must(t, err)
	listed := r.BytesAsked()
	i := slices.IndexFunc(ents, func(e node.DirEntry) bool { return e.Name == "etc" })
	if i < 0 {
		t.Fatalf("root: %v, no etc", ents)
	}
	etc, err := fs.ReadDir(ctx, ents[i].Ino)
	must(t, err)
	before := r.BytesAsked()
	buf := make([]byte, 100)
	n, _ := fs.ReadAt(ctx, etc[0].Ino, buf, 0)
	if string(buf[:n]) != "osimage\n" {
		t.Errorf("etc/hostname: %q", buf[:n])
	}
	file := r.BytesAsked() - before
	t.Logf("image %d bytes (%d blocks of %d, %d groups): Open read %d bytes in %d calls (prefetch included), listing the root %d more, one small file %d",
		size, fs.sb.blocksCount, fs.sb.blockSize, fs.sb.groups, opened, openCalls, listed-opened, file)
	if opened > 64<<10 {
		t.Errorf("Open read %d bytes, want at most 64 KiB", opened)
	}
	if listed-opened > fs.sb.blockSize {
		t.Errorf("listing the root read %d bytes, want one block", listed-opened)
	}
	if file > 2*fs.sb.blockSize {
		t.Errorf("reading an 8-byte file read %d bytes, want its inode and one block", file)
	}
	// The big file: one extent, one read.
	j := slices.IndexFunc(ents, func(e node.DirEntry) bool { return e.Name == "big" })
	p := make([]byte, len(big))
	_, err = fs.Attr(ctx, ents[j].Ino)
	must(t, err)
	calls := r.Reads()
	if _, err := fs.ReadAt(ctx, ents[j].Ino, p, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, big) {
		t.Error("big: content differs")
	}
	if c := r.Reads() - calls; c > 4 {
		t.Errorf("reading 16 MiB of a contiguous file took %d reads, want its extents coalesced", c)
	}
}

// TestConcurrent reads the same files from many goroutines at once (run
// with -race).
func TestConcurrent(t *testing.T) {
	img := smallImage(t)
	ctx := context.Background()
	fs, err := Open(ctx, nodetest.NewImage(img), int64(len(img)), node.Options{Limits: node.Limits{Objects: 2}})
	must(t, err)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if errs := walk(ctx, fs, 100, 1<<20); len(errs) > 0 {
					t.Error(errs)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestInodeTimes decodes mtimes with nanoseconds and epoch bits, which
// mkfs.ext4 -d does not write, and owners with high 16 bits.
func TestInodeTimes(t *testing.T) {
	le := binary.LittleEndian
	f := &fsys{sb: &superblock{inodeSize: 256}}
	tests := []struct {
		name  string
		isize int
		sec   uint32
		extra uint32
		want  time.Time
	}{
		{"128-byte", 128, 1_500_000_000, 0, time.Unix(1_500_000_000, 0)},
		{"nanoseconds", 256, 1_500_000_000, 123456789 << 2, time.Unix(1_500_000_000, 123456789)},
		{"before-1970", 256, uint32(0xFFFFFFFF), 0, time.Unix(-1, 0)},
		{"after-2038", 256, 0x80000000, 1, time.Unix(1<<31, 0)},
		{"no-extra-field", 256, 7, 0xFFFFFFFF, time.Unix(7, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := make([]byte, tt.isize)
			le.PutUint16(b, 0o100644)
			le.PutUint16(b[0x2:], 1000)
			le.PutUint16(b[0x78:], 2)
			le.PutUint32(b[0x10:], tt.sec)
			if tt.isize > 128 {
				le.PutUint16(b[0x80:], 32)
				if tt.name == "no-extra-field" {
					le.PutUint16(b[0x80:], 4)
				}
				le.PutUint32(b[0x88:], tt.extra)
			}
			in, err := f.parseInode(12, b)
			must(t, err)
			if !in.mtime.Equal(tt.want) {
				t.Errorf("mtime %v, want %v", in.mtime, tt.want)
			}
			if in.uid != 2<<16|1000 {
				t.Errorf("uid %d, want %d", in.uid, 2<<16|1000)
			}
		})
	}
}
