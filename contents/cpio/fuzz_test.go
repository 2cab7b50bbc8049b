package cpio

import (
	"context"
	"syscall"
	"testing"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
)

// FuzzInitramfs opens mutated images and reads everything in them.
func FuzzInitramfs(f *testing.F) {
	w := new(newc)
	w.add(nm{name: ".", mode: syscall.S_IFDIR | 0o755, nlink: 2})
	w.add(file("init", "#!/bin/sh\n"))
	w.add(file("d/e/f", "deep"))
	w.add(nm{name: "h1", mode: syscall.S_IFREG | 0o600, nlink: 2, ino: 9})
	w.add(nm{name: "h2", mode: syscall.S_IFREG | 0o600, nlink: 2, ino: 9, data: "linked"})
	w.add(nm{name: "l", mode: syscall.S_IFLNK | 0o777, data: "init"})
	w.add(nm{name: "c", mode: syscall.S_IFCHR | 0o600, rdevMajor: 1, rdevMinor: 3})
	arch := w.trailer()
	for name, c := range goCompress {
		img := c(f, arch)
		f.Add(img)
		if name != "none" {
			f.Add(cat(al(arch), al(img), make([]byte, 8), arch))
			f.Add(c(f, cat(arch, make([]byte, 4), arch)))
		}
	}
	f.Add(arch[:len(arch)/2])
	f.Fuzz(func(t *testing.T, img []byte) {
		ctx := context.Background()
		opt := node.Options{Limits: node.Limits{Objects: 1000, LinkBytes: 256, Entries: 100, DirBytes: 4096, Depth: 16}}
		if len(img)%2 == 0 {
			opt.Blocks = blockcache.New(1 << 20)
		}
		fs, err := open(ctx, nodetest.NewImage(img), int64(len(img)), opt, 4<<20)
		if err != nil {
			return
		}
		for ino := node.Ino(1); ino <= node.Ino(len(fs.entries)); ino++ {
			a, err := fs.Attr(ctx, ino)
			if err != nil {
				t.Fatalf("Attr %d: %v", ino, err)
			}
			_, _ = fs.ReadDir(ctx, ino)
			_, _ = fs.Readlink(ctx, ino)
			if a.Mode&syscall.S_IFMT == syscall.S_IFREG {
				p := make([]byte, min(a.Size, 1<<20)+8)
				_, _ = fs.ReadAt(ctx, ino, p, 0)
				_, _ = fs.ReadAt(ctx, ino, p[:7], a.Size/2)
			}
		}
	})
}
