package squashfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// fixtures are the images every comparison runs on.
var fixtures = []struct {
	name string
	bs   int
	args []string
}{
	{"gzip", 128 << 10, []string{"-comp", "gzip"}},
	{"xz-bcj", 128 << 10, []string{"-comp", "xz", "-Xbcj", "x86"}},
	{"zstd", 128 << 10, []string{"-comp", "zstd"}},
	{"lz4", 128 << 10, []string{"-comp", "lz4"}},
	{"lzo", 128 << 10, []string{"-comp", "lzo"}},
	{"b4096-owners", 4096, []string{"-comp", "gzip", "-force-uid", "1234", "-force-gid", "2345"}},
	{"uncompressed", 128 << 10, []string{"-noI", "-noD", "-noF"}},
	{"no-fragments-1m", 1 << 20, []string{"-comp", "zstd", "-no-fragments"}},
	{"always-fragments", 64 << 10, []string{"-comp", "lz4", "-always-use-fragments"}},
}

func TestFixtures(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			img := buildImage(t, fx.bs, fx.args...)
			for _, cached := range []bool{true, false} {
				t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
					var opt node.Options
					if cached {
						opt.Blocks = blockcache.New(0)
					}
					compare(t, img, opt)
				})
			}
		})
	}
}

// compare walks the image and checks it against its source tree and
// against what unsquashfs lists.
func compare(t *testing.T, img image, opt node.Options) {
	ctx := fixture.Context(t, time.Minute)
	r := nodetest.NewImage(img.data)
	f, err := Open(ctx, r, int64(len(img.data)), opt)
	if err != nil {
		t.Fatal(err)
	}
	// An odd piece size makes reads straddle blocks; without a cache,
	// larger pieces keep the test from decompressing each block 100 times.
	piece := 7001
	if opt.Blocks == nil {
		piece = 100_003
	}
	got, err := walk(ctx, f, piece, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	list := unsquashfsList(t, img.path)
	if len(got) != len(list) {
		t.Errorf("walked %d objects, unsquashfs lists %d", len(got), len(list))
	}
	inoOfSource := map[[2]uint64]node.Ino{}
	sourceOfIno := map[node.Ino][2]uint64{}
	for _, w := range got {
		a := w.attr
		l, ok := list[w.path]
		if !ok {
			t.Errorf("%q: not listed by unsquashfs", w.path)
			continue
		}
		size := fmt.Sprint(a.Size)
		if m := a.Mode & syscall.S_IFMT; m == syscall.S_IFCHR || m == syscall.S_IFBLK {
			size = fmt.Sprintf("%d,%d", unix.Major(a.Rdev), unix.Minor(a.Rdev))
		}
		want := listing{perm: permString(a.Mode), owner: fmt.Sprintf("%d/%d", a.Uid, a.Gid), size: size,
			mtime: a.Mtime.UTC().Format("2006-01-02 15:04"), target: w.link}
		if want != l {
			t.Errorf("%q: got %+v, unsquashfs lists %+v", w.path, want, l)
		}
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			subdirs := 0
			for _, e := range w.ents {
				if ea, err := f.Attr(ctx, e.Ino); err == nil && ea.Mode&syscall.S_IFMT == syscall.S_IFDIR {
					subdirs++
				}
			}
			if a.Nlink != uint32(2+subdirs) {
				t.Errorf("%q: nlink %d, %d subdirectories", w.path, a.Nlink, subdirs)
			}
		}

		fi, err := os.Lstat(filepath.Join(img.src, w.path))
		if err != nil {
			if !strings.HasPrefix(w.path, "dev/") {
				t.Errorf("%q: not in the source: %v", w.path, err)
			}
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if a.Mode&syscall.S_IFMT != st.Mode&syscall.S_IFMT {
			t.Errorf("%q: mode %#o, source %#o", w.path, a.Mode, st.Mode)
		}
		if w.path != "small" && a.Mode != st.Mode {
			t.Errorf("%q: mode %#o, source %#o", w.path, a.Mode, st.Mode)
		}
		if w.path == "small" && a.Mode != syscall.S_IFREG|0o4711 {
			t.Errorf("small: mode %#o, pseudo definition says 0104711", a.Mode)
		}
		if !a.Mtime.Equal(fi.ModTime().Truncate(time.Second)) {
			t.Errorf("%q: mtime %v, source %v", w.path, a.Mtime, fi.ModTime())
		}
		switch fi.Mode().Type() {
		case 0:
			data, err := os.ReadFile(filepath.Join(img.src, w.path))
			if err != nil {
				t.Fatal(err)
			}
			if a.Size != int64(len(data)) || w.sum != sha256.Sum256(data) {
				t.Errorf("%q: %d bytes, sha256 %x; source %d bytes", w.path, a.Size, w.sum[:4], len(data))
			}
			if a.Nlink != uint32(st.Nlink) {
				t.Errorf("%q: nlink %d, source %d", w.path, a.Nlink, st.Nlink)
			}
		case os.ModeSymlink:
			target, _ := os.Readlink(filepath.Join(img.src, w.path))
			if w.link != target || a.Size != int64(len(target)) {
				t.Errorf("%q: target %q (size %d), source %q", w.path, w.link, a.Size, target)
			}
		case os.ModeDir:
			des, _ := os.ReadDir(filepath.Join(img.src, w.path))
			var names, srcNames []string
			for _, e := range w.ents {
				names = append(names, e.Name)
			}
			for _, e := range des {
				srcNames = append(srcNames, e.Name())
			}
			if w.path == "dev" {
				srcNames = []string{"null", "sda", "tty5", "wide"}
			}
			slices.Sort(srcNames)
			if !slices.Equal(names, srcNames) {
				t.Errorf("%q: lists %q, source %q", w.path, names, srcNames)
			}
		}
		key := [2]uint64{st.Dev, st.Ino}
		if prev, ok := inoOfSource[key]; ok && prev != w.ino {
			t.Errorf("%q: Ino %d, its hard link has %d", w.path, w.ino, prev)
		}
		if prev, ok := sourceOfIno[w.ino]; ok && prev != key {
			t.Errorf("%q: Ino %d shared with another object", w.path, w.ino)
		}
		inoOfSource[key], sourceOfIno[w.ino] = w.ino, key
	}
	byPath := map[string]walked{}
	for _, w := range got {
		byPath[w.path] = w
	}
	if byPath["hl1"].ino != byPath["sub/hl2"].ino || byPath["hl1"].attr.Nlink != 2 {
		t.Errorf("hard links: Ino %d and %d, nlink %d", byPath["hl1"].ino, byPath["sub/hl2"].ino, byPath["hl1"].attr.Nlink)
	}
	checkWrongType(t, f, byPath)
}

// checkWrongType calls each method on objects of the wrong type, and
// reads at and past the end of a file.
func checkWrongType(t *testing.T, f node.FS, byPath map[string]walked) {
	ctx := fixture.Context(t, time.Minute)
	file, dir, link := byPath["frag-tail"].ino, byPath["sub"].ino, byPath["link"].ino
	if _, err := f.ReadDir(ctx, file); !errors.Is(err, node.ErrNotDir) {
		t.Errorf("ReadDir of a file: %v", err)
	}
	if _, err := f.ReadAt(ctx, dir, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
		t.Errorf("ReadAt of a directory: %v", err)
	}
	if _, err := f.ReadAt(ctx, link, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
		t.Errorf("ReadAt of a symlink: %v", err)
	}
	if _, err := f.Readlink(ctx, file); !errors.Is(err, node.ErrNotLink) {
		t.Errorf("Readlink of a file: %v", err)
	}
	size := byPath["frag-tail"].attr.Size
	if n, err := f.ReadAt(ctx, file, make([]byte, 10), size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v", n, err)
	}
	if n, err := f.ReadAt(ctx, file, make([]byte, 10), size-4); n != 4 || err != io.EOF {
		t.Errorf("ReadAt across the end: %d, %v", n, err)
	}
	if _, err := f.ReadAt(ctx, file, make([]byte, 10), -1); err == nil {
		t.Errorf("ReadAt at -1: no error")
	}
	for _, ino := range []node.Ino{0, node.MaxIno, node.MaxIno + 1, 1<<16 | 9000} {
		if _, err := f.Attr(ctx, ino); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("Attr(%d): %v, want ErrCorrupt", ino, err)
		}
	}
}

// TestCacheReadsOnce reads files twice: with a block cache the second
// read must not read the image at all; without one it must.
func TestCacheReadsOnce(t *testing.T) {
	img := buildImage(t, 128<<10, "-comp", "xz")
	for _, cached := range []bool{true, false} {
		for _, name := range []string{"small", "many-blocks", "frag-tail", "sub/deeper/file"} {
			t.Run(fmt.Sprintf("%s/cache=%v", name, cached), func(t *testing.T) {
				ctx := fixture.Context(t, time.Minute)
				var opt node.Options
				if cached {
					opt.Blocks = blockcache.New(0)
				}
				r := nodetest.NewImage(img.data)
				f, err := Open(ctx, r, int64(len(img.data)), opt)
				if err != nil {
					t.Fatal(err)
				}
				ino := nodetest.Lookup(t, f, name)
				a, err := f.Attr(ctx, ino)
				if err != nil {
					t.Fatal(err)
				}
				var sums [2][32]byte
				var reads [2]int64
				for i := range 2 {
					before := r.BytesRead()
					buf := make([]byte, a.Size)
					if n, err := f.ReadAt(ctx, ino, buf, 0); n != len(buf) || (err != nil && err != io.EOF) {
						t.Fatalf("read %d: %d, %v", i, n, err)
					}
					sums[i], reads[i] = sha256.Sum256(buf), r.BytesRead()-before
				}
				if sums[0] != sums[1] {
					t.Error("the two reads differ")
				}
				t.Logf("%s of %d bytes: first read %d image bytes, second %d", name, a.Size, reads[0], reads[1])
				if cached && reads[1] != 0 {
					t.Errorf("second read read %d bytes of the image, want 0", reads[1])
				}
				if !cached && reads[1] == 0 {
					t.Errorf("without a cache the second read read nothing: the counter does not count")
				}
			})
		}
	}
}

// TestOpenReadsLittle opens an image of about 8 MiB of file data and lists
// its root: that must read at most 5% of the image.
func TestOpenReadsLittle(t *testing.T) {
	fixture.RequireTools(t, "mksquashfs")
	ctx := fixture.Context(t, time.Minute)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	sums, err := fixture.RandomTree(src, 7, 60, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img")
	if err := fixture.MakeSquashfs(ctx, src, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r := nodetest.NewImage(data)
	f, err := Open(ctx, r, int64(len(data)), node.Options{Blocks: blockcache.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := f.ReadDir(ctx, f.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := f.Attr(ctx, e.Ino); err != nil {
			t.Fatal(err)
		}
	}
	opened := r.BytesRead()
	t.Logf("open and list the root (%d entries): %d bytes in %d reads of a %d-byte image (%.2f%%)",
		len(ents), opened, r.Reads(), len(data), 100*float64(opened)/float64(len(data)))
	if opened*20 > int64(len(data)) {
		t.Errorf("read %d bytes of %d, more than 5%%", opened, len(data))
	}
	// One small file: only its own blocks.
	var name string
	var size int64 = 1 << 62
	for p := range sums {
		if !strings.Contains(p, "/") {
			fi, _ := os.Stat(filepath.Join(src, p))
			if fi.Size() < size {
				name, size = p, fi.Size()
			}
		}
	}
	ino := nodetest.Lookup(t, f, name)
	buf := make([]byte, size)
	before := r.BytesRead()
	if n, err := f.ReadAt(ctx, ino, buf, 0); n != len(buf) || (err != nil && err != io.EOF) {
		t.Fatalf("read %s: %d, %v", name, n, err)
	}
	read := r.BytesRead() - before
	t.Logf("read %s of %d bytes: %d image bytes", name, size, read)
	if read > size+size/10+4096 {
		t.Errorf("reading a %d-byte file read %d bytes", size, read)
	}
	want := sums[name]
	if got := fmt.Sprintf("%x", sha256.Sum256(buf)); got != want {
		t.Errorf("%s: sha256 %s, want %s", name, got, want)
	}
}

func TestRdev(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{1, 3}, {8, 0}, {259, 300000}, {4095, 255}, {0, 1<<20 - 1}} {
		enc := c.major<<8 | c.minor&0xff | (c.minor&^0xff)<<12
		if got := rdev(enc); got != unix.Mkdev(c.major, c.minor) {
			t.Errorf("rdev(%#x) = %#x, want Mkdev(%d, %d)", enc, got, c.major, c.minor)
		}
	}
}

// tinyImage builds a small image (no padding) for corruption and fuzz tests.
func tinyImage(t testing.TB, args ...string) []byte {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := fixture.WriteTree(src, map[string][]byte{
		"a":       []byte("hello\n"),
		"d/b":     bytes.Repeat([]byte("squash "), 700),
		"d/e/big": fixture.RandomBytes(9, 5000),
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("d/b", filepath.Join(src, "l")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img")
	cmd := append([]string{src, out, "-noappend", "-quiet", "-no-progress", "-nopad", "-b", "4096",
		"-mkfs-time", "0", "-all-time", "0", "-p", "c c 600 0 0 1 2"}, args...)
	if b, err := exec.Command("mksquashfs", cmd...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestConcurrent walks one FS from several goroutines at once, sharing a
// small block cache, and checks they all see what one walk sees.
func TestConcurrent(t *testing.T) {
	img := buildImage(t, 16<<10, "-comp", "zstd")
	ctx := fixture.Context(t, 2*time.Minute)
	f, err := Open(ctx, nodetest.NewImage(img.data), int64(len(img.data)), node.Options{Blocks: blockcache.New(256 << 10)})
	if err != nil {
		t.Fatal(err)
	}
	want, err := walk(ctx, f, 5000, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 6)
	for g := range cap(errs) {
		go func() {
			got, err := walk(ctx, f, 3000+g*1000, 1<<20, 1<<40)
			if err == nil && len(got) != len(want) {
				err = fmt.Errorf("walked %d objects, want %d", len(got), len(want))
			}
			for i := range got {
				if err == nil && (got[i].path != want[i].path || got[i].sum != want[i].sum || got[i].attr != want[i].attr) {
					err = fmt.Errorf("%q differs", got[i].path)
				}
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
