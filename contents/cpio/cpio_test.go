package cpio

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestSegments opens images of several segments, as bootloaders and
// dracut concatenate them.
func TestSegments(t *testing.T) {
	fixture.RequireTools(t, "cpio", "gzip", "zstd")
	early := new(newc).add(dir("kernel")).add(file("kernel/microcode.bin", "UCODE")).trailer()
	main := new(newc).add(file("init", "main init")).add(file("etc/os-release", "ID=test")).trailer()
	second := new(newc).add(file("extra", "second archive")).add(file("init", "replaced init")).trailer()
	pad := make([]byte, 512)
	cases := []struct {
		name  string
		img   []byte
		files map[string]string
	}{
		{"early+gzip", cat(early, compressTool(t, main, "gzip", "-9", "-c")),
			map[string]string{"kernel/microcode.bin": "UCODE", "init": "main init"}},
		{"zstd of two archives", compressTool(t, cat(main, pad, second), "zstd", "-19", "-q", "-c"),
			map[string]string{"init": "replaced init", "extra": "second archive", "etc/os-release": "ID=test"}},
		{"padding between", cat(al(cat(early, pad, compressTool(t, main, "gzip", "-c"), pad[:3], compressTool(t, second, "zstd", "-q", "-c"))), pad, early),
			map[string]string{"kernel/microcode.bin": "UCODE", "init": "replaced init", "extra": "second archive"}},
		{"gzip then raw", cat(al(goCompress["gzip"](t, main)), early),
			map[string]string{"init": "main init", "kernel/microcode.bin": "UCODE"}},
		{"xz then lz4 then raw", cat(goCompress["xz"](t, main), al(goCompress["lz4"](t, second)), pad[:8], early),
			map[string]string{"init": "replaced init", "kernel/microcode.bin": "UCODE"}},
		{"two gzip members", cat(goCompress["gzip"](t, main), goCompress["gzip"](t, second)),
			map[string]string{"init": "replaced init", "etc/os-release": "ID=test"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, cache := range []*blockcache.Cache{nil, blockcache.New(0)} {
				fs := openBytes(t, c.img, node.Options{Blocks: cache})
				for p, want := range c.files {
					if got := string(readAll(t, fs, nodetest.Lookup(t, fs, p))); got != want {
						t.Errorf("%s: %q, want %q", p, got, want)
					}
				}
			}
		})
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// al pads b with zeros to a multiple of 4, as an archive after it must
// start at one (the kernel's "this_header & 3").
func al(b []byte) []byte { return append(b, make([]byte, pad4(int64(len(b))))...) }

// TestSemantics checks the kernel's rules for names, overrides and links.
func TestSemantics(t *testing.T) {
	ctx := context.Background()
	w := new(newc)
	w.add(nm{name: ".", mode: syscall.S_IFDIR | 0o700, uid: 7, gid: 8, mtime: 99, nlink: 3})
	w.add(file("a", "first"))
	w.add(file("./a", "second"))    // replaces a
	w.add(file("/abs", "absolute")) // leading / stripped
	w.add(file("x/y/z", "deep"))    // x and x/y implied
	w.add(file("../evil", "no"))    // dropped
	w.add(file("a//b", "no"))       // dropped
	w.add(file("p/./q", "no"))      // dropped
	w.add(dir("d"))
	w.add(file("d/kid", "kid"))
	w.add(nm{name: "d", mode: syscall.S_IFDIR | 0o711, uid: 3, nlink: 2}) // dir over dir: attrs only
	w.add(file("d", "file over non-empty dir"))                           // dropped
	w.add(nm{name: "h1", mode: syscall.S_IFREG | 0o600, nlink: 2, ino: 77})
	w.add(nm{name: "h2", mode: syscall.S_IFREG | 0o640, nlink: 2, ino: 77, data: "linked data"})
	w.add(nm{name: "dev/console", mode: syscall.S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1})
	w.add(nm{name: "dev/sda", mode: syscall.S_IFBLK | 0o660, rdevMajor: 8})
	w.add(nm{name: "dev/fifo", mode: syscall.S_IFIFO | 0o644})
	w.add(nm{name: "dev/sock", mode: syscall.S_IFSOCK | 0o755})
	w.add(nm{name: "link", mode: syscall.S_IFLNK | 0o777, data: "a"})
	w.add(nm{name: "longlink", mode: syscall.S_IFLNK | 0o777, data: strings.Repeat("x", 5000)}) // over LinkBytes: dropped
	img := w.trailer()

	for _, comp := range []string{"none", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			fs := openBytes(t, goCompress[comp](t, img), node.Options{})
			root, err := fs.Attr(ctx, fs.Root())
			must(t, err)
			if root.Mode != syscall.S_IFDIR|0o700 || root.Uid != 7 || root.Gid != 8 || root.Mtime.Unix() != 99 {
				t.Errorf("root attr %+v", root)
			}
			for p, want := range map[string]string{"a": "second", "abs": "absolute", "x/y/z": "deep", "d/kid": "kid", "h1": "linked data", "h2": "linked data"} {
				if got := string(readAll(t, fs, nodetest.Lookup(t, fs, p))); got != want {
					t.Errorf("%s: %q, want %q", p, got, want)
				}
			}
			for _, p := range []string{"evil", "a/b", "p", "longlink", ".."} {
				if _, err := nodetest.Find(ctx, fs, p); err == nil {
					t.Errorf("%s is there", p)
				}
			}
			x, _ := fs.Attr(ctx, nodetest.Lookup(t, fs, "x/y"))
			if x.Mode != syscall.S_IFDIR|0o755 || x.Uid != 0 || x.Mtime.Unix() != 0 {
				t.Errorf("implied dir %+v", x)
			}
			d, _ := fs.Attr(ctx, nodetest.Lookup(t, fs, "d"))
			if d.Mode != syscall.S_IFDIR|0o711 || d.Uid != 3 {
				t.Errorf("d %+v", d)
			}
			h1, h2 := nodetest.Lookup(t, fs, "h1"), nodetest.Lookup(t, fs, "h2")
			if h1 != h2 {
				t.Errorf("hard links have Ino %d and %d", h1, h2)
			}
			if a, _ := fs.Attr(ctx, h1); a.Mode != syscall.S_IFREG|0o640 || a.Nlink != 2 {
				t.Errorf("hard link attr %+v", a)
			}
			for p, rdev := range map[string]uint64{"dev/console": unix.Mkdev(5, 1), "dev/sda": unix.Mkdev(8, 0)} {
				if a, _ := fs.Attr(ctx, nodetest.Lookup(t, fs, p)); a.Rdev != rdev {
					t.Errorf("%s: rdev %#x, want %#x", p, a.Rdev, rdev)
				}
			}
			if a, _ := fs.Attr(ctx, nodetest.Lookup(t, fs, "dev/fifo")); a.Mode != syscall.S_IFIFO|0o644 {
				t.Errorf("fifo %+v", a)
			}
			if a, _ := fs.Attr(ctx, nodetest.Lookup(t, fs, "dev/sock")); a.Mode != syscall.S_IFSOCK|0o755 {
				t.Errorf("socket %+v", a)
			}
			l := nodetest.Lookup(t, fs, "link")
			if got, err := fs.Readlink(ctx, l); got != "a" || err != nil {
				t.Errorf("readlink %q %v", got, err)
			}
			// Wrong types.
			if _, err := fs.ReadDir(ctx, l); !errors.Is(err, node.ErrNotDir) {
				t.Errorf("ReadDir on link: %v", err)
			}
			if _, err := fs.Readlink(ctx, h1); !errors.Is(err, node.ErrNotLink) {
				t.Errorf("Readlink on file: %v", err)
			}
			if _, err := fs.ReadAt(ctx, l, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
				t.Errorf("ReadAt on link: %v", err)
			}
			if _, err := fs.Attr(ctx, 0); err == nil {
				t.Error("Attr(0) works")
			}
			// io.ReaderAt contract at the end and past it.
			p := make([]byte, 4)
			if n, err := fs.ReadAt(ctx, h1, p, 8); n != 3 || err != io.EOF || string(p[:n]) != "ata" {
				t.Errorf("ReadAt at end: %d %v %q", n, err, p[:n])
			}
			if n, err := fs.ReadAt(ctx, h1, p, 100); n != 0 || err != io.EOF {
				t.Errorf("ReadAt past end: %d %v", n, err)
			}
		})
	}
}

// TestLazy counts what reading a file costs after Open.
func TestLazy(t *testing.T) {
	ctx := context.Background()
	big := string(fixture.RandomBytes(3, 3<<20))
	w := new(newc).add(file("big", big)).add(file("small", "hello, small file")).add(file("tail", big[:1<<20]))
	arch := w.trailer()

	t.Run("uncompressed", func(t *testing.T) {
		r := nodetest.NewImage(arch)
		fs, err := Open(ctx, r, int64(len(arch)), node.Options{})
		must(t, err)
		calls, n := reset(r)
		t.Logf("open: %d reads, %d bytes of %d", calls, n, len(arch))
		if n > 300<<10 {
			t.Errorf("open read %d bytes of %d", n, len(arch))
		}
		_, _ = fs.ReadDir(ctx, fs.Root())
		ino := nodetest.Lookup(t, fs, "small")
		if got := string(readAll(t, fs, ino)); got != "hello, small file" {
			t.Errorf("small: %q", got)
		}
		calls, n = reset(r)
		t.Logf("read small: %d reads, %d bytes", calls, n)
		if n > 64 {
			t.Errorf("reading a 17-byte file read %d bytes", n)
		}
	})
	for _, comp := range []string{"gzip", "zstd", "xz", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			img := goCompress[comp](t, arch)
			r := nodetest.NewImage(img)
			fs, err := Open(ctx, r, int64(len(img)), node.Options{Blocks: blockcache.New(16 << 20)})
			must(t, err)
			calls, n := reset(r)
			t.Logf("open: %d reads, %d bytes of %d", calls, n, len(img))
			for i := range 2 {
				if got := readAll(t, fs, nodetest.Lookup(t, fs, "big")); string(got) != big {
					t.Fatal("big differs")
				}
				if calls, _ := reset(r); calls != 0 {
					t.Errorf("read %d: %d ReadAt calls, want 0 (the cache has it)", i, calls)
				}
			}
		})
		t.Run(comp+"/no cache", func(t *testing.T) {
			// Every read decompresses again: forward reads go on with the
			// decompressor, a read behind it starts again.
			img := goCompress[comp](t, arch)
			fs := openBytes(t, img, node.Options{})
			tail := nodetest.Lookup(t, fs, "tail")
			p := make([]byte, 100<<10)
			for _, off := range []int64{900 << 10, 0, 300 << 10, 600 << 10, 100} {
				n, err := fs.ReadAt(ctx, tail, p, off)
				want := big[off:min(off+int64(len(p)), 1<<20)]
				if string(p[:n]) != want || (err != nil && err != io.EOF) {
					t.Fatalf("at %d: %d bytes, %v", off, n, err)
				}
			}
		})
	}
}

// TestCorrupt feeds broken images: each must fail with ErrCorrupt.
func TestCorrupt(t *testing.T) {
	good := new(newc).add(file("f", "some data here")).trailer()
	badHex := bytes.Clone(good)
	copy(badHex[14:], "zzzzzzzz")
	pastEnd := new(newc).add(nm{name: "f", mode: syscall.S_IFREG | 0o644, data: "xx"}).Bytes()
	pastEnd = append(bytes.Clone(pastEnd[:headerLen+4]), 0, 0)
	copy(pastEnd[54:62], "00100000")
	noNul := bytes.Clone(good)
	noNul[headerLen+1] = 'x'
	bomb := func() []byte {
		var o bytes.Buffer
		z, _ := gzip.NewWriterLevel(&o, gzip.BestSpeed)
		_, _ = z.Write(good)
		zero := make([]byte, 1<<20)
		for range 64 {
			_, _ = z.Write(zero)
		}
		_ = z.Close()
		return o.Bytes()
	}()
	cases := []struct {
		name string
		img  []byte
	}{
		{"truncated header", good[:50]},
		{"truncated data", good[:headerLen+4+5]},
		{"bad hex", badHex},
		{"size past the end", pastEnd},
		{"name without NUL", noNul},
		{"no trailer", good[:len(good)-headerLen-12]},
		{"invalid magic", []byte("hello world!")},
		{"odc cpio", []byte("070707" + strings.Repeat("0", 200))},
		{"unaligned archive", append([]byte{0}, good...)},
		{"truncated gzip", goCompress["gzip"](t, good)[:30]},
		{"truncated zstd", goCompress["zstd"](t, good)[:20]},
		{"truncated xz", goCompress["xz"](t, good)[:40]},
		{"truncated lz4", goCompress["lz4"](t, good)[:20]},
		{"junk in gzip", goCompress["gzip"](t, append(bytes.Clone(good), "junk"...))},
		{"gzip ends inside an archive", goCompress["gzip"](t, good[:len(good)-8])},
		{"bomb", bomb},
		{"unaligned archive after gzip", func() []byte {
			b := goCompress["gzip"](t, good)
			if len(b)%4 == 0 {
				b = append(b, 0)
			}
			return cat(b, good)
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := open(context.Background(), nodetest.NewImage(c.img), int64(len(c.img)), node.Options{}, 8<<20)
			if !errors.Is(err, node.ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			t.Log(err)
		})
	}
	t.Run("lzo unsupported", func(t *testing.T) {
		img := []byte("\x89LZO\x00\r\n\x1a\n")
		_, err := Open(context.Background(), nodetest.NewImage(img), int64(len(img)), node.Options{})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("err %v, want ErrUnsupported", err)
		}
	})
	t.Run("reader error passed on", func(t *testing.T) {
		img := goCompress["gzip"](t, good)
		_, err := Open(context.Background(), failingReader{}, int64(len(img)), node.Options{})
		if err == nil || errors.Is(err, node.ErrCorrupt) || !errors.Is(err, errEIO) {
			t.Fatalf("err %v, want the reader's error", err)
		}
	})
}

var errEIO = errors.New("network EIO")

type failingReader struct{}

func (failingReader) ReadAt(context.Context, []byte, int64) (int, error) { return 0, errEIO }

// TestConcurrent reads one compressed file from many goroutines at once,
// with a cache too small to hold it, so that pieces are decompressed again.
func TestConcurrent(t *testing.T) {
	big := fixture.RandomBytes(4, 2<<20)
	img := goCompress["zstd"](t, new(newc).add(file("big", string(big))).trailer())
	for _, cache := range []*blockcache.Cache{nil, blockcache.New(512 << 10)} {
		fs := openBytes(t, img, node.Options{Blocks: cache})
		ino := nodetest.Lookup(t, fs, "big")
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				p := make([]byte, 64<<10)
				for i := range 16 {
					off := int64((g*7+i*13)%32) * int64(len(p))
					n, err := fs.ReadAt(context.Background(), ino, p, off)
					if err != nil && err != io.EOF || !bytes.Equal(p[:n], big[off:off+int64(n)]) || n == 0 {
						errs <- fmt.Errorf("at %d: %d bytes, %v", off, n, err)
						return
					}
				}
				errs <- nil
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	}
}
