package cpio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// sourceTree writes a tree with every kind of object an initramfs holds.
func sourceTree(t *testing.T) string {
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"init":                 []byte("#!/bin/sh\nexec /bin/sh\n"),
		"bin/busybox":          fixture.RandomBytes(1, 700<<10), // over two cache pieces
		"etc/passwd":           []byte("root:x:0:0::/root:/bin/sh\n"),
		"empty":                nil,
		"lib/modules/a/b/c.ko": fixture.RandomBytes(2, 5000),
		"usr/share/big":        bytes.Repeat([]byte("initramfs "), 100000),
	}
	must(t, fixture.WriteTree(src, files))
	must(t, os.MkdirAll(filepath.Join(src, "emptydir"), 0o700))
	must(t, os.Symlink("busybox", filepath.Join(src, "bin/sh")))
	must(t, os.Symlink("/no/such/target", filepath.Join(src, "dangling")))
	must(t, os.Link(filepath.Join(src, "bin/busybox"), filepath.Join(src, "bin/ls")))
	must(t, os.Link(filepath.Join(src, "bin/busybox"), filepath.Join(src, "usr/cat")))
	must(t, os.Chmod(filepath.Join(src, "init"), 0o4755))
	must(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	when := time.Unix(1234567890, 0)
	must(t, os.Chtimes(filepath.Join(src, "etc/passwd"), when, when))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(src, "etc/passwd"), 1234, 5678))
		must(t, os.Lchown(filepath.Join(src, "bin/sh"), 42, 43))
		must(t, syscall.Mknod(filepath.Join(src, "console"), syscall.S_IFCHR|0o600, int(unix.Mkdev(5, 1))))
		must(t, syscall.Mknod(filepath.Join(src, "sda"), syscall.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	}
	return src
}

// cpioOf archives dir with the cpio tool in format (newc or crc).
func cpioOf(t *testing.T, dir, format string) []byte {
	cmd := exec.Command("sh", "-c", "find . | LC_ALL=C sort | cpio --quiet -o -H "+format)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return out
}

// compressTool pipes b through a compressor command.
func compressTool(t *testing.T, b []byte, args ...string) []byte {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return out
}

var toolCompressions = []struct {
	name string
	args []string
}{
	{"none", nil},
	{"gzip", []string{"gzip", "-9", "-c"}},
	{"zstd", []string{"zstd", "-19", "-q", "-c"}},
	{"xz", []string{"xz", "--check=crc32", "-c"}},
	{"lz4", []string{"lz4", "-l", "-q", "-c"}},
	{"bzip2", []string{"bzip2", "-c"}},
	{"lzma", []string{"lzma", "-c"}},
}

func TestTools(t *testing.T) {
	fixture.RequireTools(t, "cpio", "gzip", "zstd", "xz", "lz4", "bzip2", "lzma")
	src := sourceTree(t)
	for _, format := range []string{"newc", "crc"} {
		arch := cpioOf(t, src, format)
		for _, c := range toolCompressions {
			t.Run(format+"/"+c.name, func(t *testing.T) {
				img := arch
				if c.args != nil {
					img = compressTool(t, arch, c.args...)
				}
				for _, cache := range []*blockcache.Cache{nil, blockcache.New(1 << 20), blockcache.New(64 << 20)} {
					fs := openBytes(t, img, node.Options{Blocks: cache})
					compareTree(t, src, fs)
				}
			})
		}
	}
}

// compareTree walks src and fs side by side.
func compareTree(t *testing.T, src string, fsys node.FS) {
	t.Helper()
	ctx := context.Background()
	inos := map[uint64]node.Ino{} // source inode -> FS Ino
	count := 0
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		count++
		ino, err := nodetest.Find(ctx, fsys, filepath.ToSlash(rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		var st syscall.Stat_t
		must(t, syscall.Lstat(p, &st))
		a, err := fsys.Attr(ctx, ino)
		must(t, err)
		if a.Mode != st.Mode || a.Uid != st.Uid || a.Gid != st.Gid || a.Mtime.Unix() != st.Mtim.Sec || a.Nlink != uint32(st.Nlink) {
			t.Errorf("%s: attr %+v, source mode %#o uid %d gid %d mtime %d nlink %d", rel, a, st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Nlink)
		}
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			want, _ := os.ReadFile(p)
			if a.Size != int64(len(want)) {
				t.Errorf("%s: size %d, want %d", rel, a.Size, len(want))
			}
			if got := readAll(t, fsys, ino); sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("%s: content differs", rel)
			}
			if prev, ok := inos[st.Ino]; ok && prev != ino {
				t.Errorf("%s: hard link Ino %d, other name has %d", rel, ino, prev)
			}
			inos[st.Ino] = ino
		case syscall.S_IFLNK:
			want, _ := os.Readlink(p)
			got, err := fsys.Readlink(ctx, ino)
			if err != nil || got != want || a.Size != int64(len(want)) {
				t.Errorf("%s: link %q %v size %d, want %q", rel, got, err, a.Size, want)
			}
		case syscall.S_IFCHR, syscall.S_IFBLK:
			if a.Rdev != st.Rdev {
				t.Errorf("%s: rdev %#x, want %#x", rel, a.Rdev, st.Rdev)
			}
		}
		return nil
	})
	must(t, err)
	if got := countTree(t, fsys, fsys.Root()); got != count {
		t.Errorf("FS has %d names, source %d", got, count)
	}
}

func countTree(t *testing.T, fsys node.FS, ino node.Ino) int {
	n := 1
	des, err := fsys.ReadDir(context.Background(), ino)
	if err != nil {
		return n
	}
	for _, de := range des {
		n += countTree(t, fsys, de.Ino)
	}
	return n
}
