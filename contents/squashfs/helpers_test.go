package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// pseudo are the mksquashfs pseudo definitions every fixture gets: device
// nodes (no root needed) and an owner change.
var pseudo = []string{
	"dev/null c 666 0 0 1 3",
	"dev/tty5 c 620 0 5 4 5",
	"dev/sda b 660 0 6 8 0",
	"dev/wide c 600 0 0 300 7",
	"small m 4711 1234 1234",
}

// writeSource writes the fixture tree for a block size of bs into dir.
func writeSource(t *testing.T, dir string, bs int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, perm os.FileMode) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, perm))
		must(os.Chmod(p, perm))
	}
	// mixed is half random, half text, so some blocks compress and some not.
	mixed := func(seed uint64, n int) []byte {
		b := fixture.RandomBytes(seed, n)
		for i := 0; i < n; i += 2 * bs {
			copy(b[i:min(n, i+bs)], bytes.Repeat([]byte("squashfs block text\n"), bs/20+1))
		}
		return b
	}
	write("empty", nil, 0o644)
	write("small", []byte("hello, squashfs\n"), 0o644)
	write("one-block", fixture.RandomBytes(1, bs), 0o644)
	write("block-plus-one", fixture.RandomBytes(2, bs+1), 0o600)
	write("many-blocks", mixed(3, 20*bs+123), 0o644)
	write("frag-tail", mixed(4, 2*bs+1000), 0o640)
	write("text", bytes.Repeat([]byte("all work and no play\n"), 3*bs/21), 0o644)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755)
	write("sub/deeper/file", []byte("deep\n"), 0o444)
	write("hl1", []byte("hard linked content\n"), 0o644)
	must(os.Link(filepath.Join(dir, "hl1"), filepath.Join(dir, "sub/hl2")))
	for i := range 600 {
		write(fmt.Sprintf("wide/entry-with-a-long-name-%04d", i), []byte{byte(i)}, 0o644)
	}
	must(os.MkdirAll(filepath.Join(dir, "dev"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "setgid-dir"), 0o755))
	must(os.Chmod(filepath.Join(dir, "setgid-dir"), 0o2775))
	must(os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o1777))

	// A sparse file: data, a hole of several blocks, data, a trailing hole.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sp.Write(fixture.RandomBytes(5, 100))
	must(err)
	_, err = sp.WriteAt(fixture.RandomBytes(6, bs), int64(5*bs))
	must(err)
	must(sp.Close())
	must(exec.Command("truncate", "-s", fmt.Sprint(8*bs), filepath.Join(dir, "sparse")).Run())

	must(os.Symlink("small", filepath.Join(dir, "link")))
	must(os.Symlink("../small", filepath.Join(dir, "sub/uplink")))
	must(os.Symlink(strings.Repeat("long/", 60)+"dangling", filepath.Join(dir, "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	must(l.Close())

	// Distinct mtimes, set last, deepest first.
	base := time.Date(2001, 2, 3, 4, 5, 0, 0, time.UTC)
	var paths []string
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i := len(paths) - 1; i >= 0; i-- {
		mt := base.Add(time.Duration(i) * 97 * time.Minute)
		must(lchtimes(paths[i], mt))
	}
}

// lchtimes sets the times of p, of a symlink itself if it is one.
func lchtimes(p string, mt time.Time) error {
	ts := unix.NsecToTimespec(mt.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// image is one built fixture.
type image struct {
	src, path string
	bs        int
	data      []byte
}

// buildImage writes the source tree and builds an image of it with args.
func buildImage(t *testing.T, bs int, args ...string) image {
	t.Helper()
	fixture.RequireTools(t, "mksquashfs", "unsquashfs", "truncate")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeSource(t, src, bs)
	out := filepath.Join(dir, "img.sqfs")
	mkArgs := []string{src, out, "-noappend", "-quiet", "-no-progress", "-b", fmt.Sprint(bs)}
	for _, p := range pseudo {
		mkArgs = append(mkArgs, "-p", p)
	}
	mkArgs = append(mkArgs, args...)
	if b, err := exec.Command("mksquashfs", mkArgs...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v: %s", args, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return image{src: src, path: out, bs: bs, data: data}
}

// listing is one line of unsquashfs -lln.
type listing struct {
	perm, owner, size, mtime, target string
}

// unsquashfsList runs unsquashfs -lln in UTC and keys its lines by path
// relative to the root ("" for the root).
func unsquashfsList(t *testing.T, img string) map[string]listing {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", "-d", "R", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	m := map[string]listing{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		var l listing
		l.perm, l.owner = f[0], f[1]
		rest := f[2:]
		if strings.HasSuffix(rest[0], ",") {
			l.size, rest = rest[0]+rest[1], rest[2:]
		} else {
			l.size, rest = rest[0], rest[1:]
		}
		l.mtime = rest[0] + " " + rest[1]
		p := rest[2]
		if len(rest) == 5 && rest[3] == "->" {
			l.target = rest[4]
		}
		p = strings.TrimPrefix(strings.TrimPrefix(p, "R"), "/")
		m[p] = l
	}
	return m
}

// permString is the ls-style mode string of a st_mode, as unsquashfs prints it.
func permString(mode uint32) string {
	var b [10]byte
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		b[0] = 'd'
	case syscall.S_IFLNK:
		b[0] = 'l'
	case syscall.S_IFCHR:
		b[0] = 'c'
	case syscall.S_IFBLK:
		b[0] = 'b'
	case syscall.S_IFIFO:
		b[0] = 'p'
	case syscall.S_IFSOCK:
		b[0] = 's'
	default:
		b[0] = '-'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		} else {
			b[1+i] = '-'
		}
	}
	special := func(i int, bit uint32, set, unset byte) {
		if mode&bit != 0 {
			if b[i] == '-' {
				b[i] = unset
			} else {
				b[i] = set
			}
		}
	}
	special(3, syscall.S_ISUID, 's', 'S')
	special(6, syscall.S_ISGID, 's', 'S')
	special(9, syscall.S_ISVTX, 't', 'T')
	return string(b[:])
}

// walked is one object met by walk.
type walked struct {
	path string
	ino  node.Ino
	attr node.Attr
	sum  [32]byte // content of a regular file
	link string
	ents []node.DirEntry
}

// walk visits every object under the root, depth first, reading all of
// every file in pieces of piece bytes, at most maxObjects objects and
// maxRead bytes in all; it stops at the first error.
func walk(ctx context.Context, f node.FS, piece int, maxObjects int, maxRead int64) ([]walked, error) {
	var out []walked
	budget := maxRead
	var visit func(path string, ino node.Ino, depth int) error
	onPath := map[node.Ino]bool{}
	visit = func(path string, ino node.Ino, depth int) error {
		if len(out) >= maxObjects || depth > 32 {
			return nil
		}
		a, err := f.Attr(ctx, ino)
		if err != nil {
			return fmt.Errorf("attr %q: %w", path, err)
		}
		w := walked{path: path, ino: ino, attr: a}
		switch a.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			h := sha256.New()
			buf := make([]byte, piece)
			var off int64
			for budget > 0 {
				n, err := f.ReadAt(ctx, ino, buf, off)
				h.Write(buf[:n])
				off += int64(n)
				budget -= int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("read %q at %d: %w", path, off, err)
				}
				if n != len(buf) {
					return fmt.Errorf("read %q at %d: short read %d without an error", path, off, n)
				}
			}
			if budget > 0 && off != a.Size {
				return fmt.Errorf("read %q: %d bytes, size %d", path, off, a.Size)
			}
			copy(w.sum[:], h.Sum(nil))
		case syscall.S_IFLNK:
			if w.link, err = f.Readlink(ctx, ino); err != nil {
				return fmt.Errorf("readlink %q: %w", path, err)
			}
		case syscall.S_IFDIR:
			if w.ents, err = f.ReadDir(ctx, ino); err != nil {
				return fmt.Errorf("readdir %q: %w", path, err)
			}
		}
		out = append(out, w)
		if w.ents != nil && !onPath[ino] {
			onPath[ino] = true
			defer delete(onPath, ino)
			for _, e := range w.ents {
				if err := visit(strings.TrimPrefix(path+"/"+e.Name, "/"), e.Ino, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := visit("", f.Root(), 0)
	return out, err
}
