package iso9660

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

var mtime = time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)

const longName = "a-rock-ridge-name-well-over-sixty-four-characters-long-so-joliet-must-cut-it-short.txt"

// source writes the tree the images hold; devices only as root.
func source(t testing.TB, dir string) {
	t.Helper()
	big := make([]byte, 3<<20+5)
	for i := range big {
		big[i] = byte(i * 13 / 7)
	}
	files := map[string][]byte{
		"empty":                      {},
		"one":                        {'1'},
		"s2048":                      bytes.Repeat([]byte{'a'}, 2048),
		"s2049":                      bytes.Repeat([]byte{'b'}, 2049),
		"big.bin":                    big,
		"suid":                       []byte("#!/bin/sh\n"),
		"private":                    []byte("secret\n"),
		"hard1":                      []byte("linked\n"),
		longName:                     []byte("long\n"),
		"Mixed Case.TXT":             []byte("mixed\n"),
		"dir/nested/deeper/file.txt": []byte("deep\n"),
	}
	if err := fixture.WriteTree(dir, files); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(filepath.Join(dir, "suid"), 0o4755))
	must(os.Chmod(filepath.Join(dir, "private"), 0o600))
	must(os.Chmod(filepath.Join(dir, "dir"), 0o750))
	must(os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "dir", "hard2")))
	must(os.Symlink("one", filepath.Join(dir, "link-rel")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "link-abs")))
	must(os.Symlink("../dir/./nested", filepath.Join(dir, "dir", "link-dotdot")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	if os.Getuid() == 0 {
		must(syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, int(1<<8|3)))
		must(os.Lchown(filepath.Join(dir, "private"), 1234, 5678))
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			ts := unix.NsecToTimespec(mtime.UnixNano())
			err = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		}
		return err
	})
}

// xorriso runs xorriso with args and returns the image it wrote at out.
func xorriso(t testing.TB, out string, args ...string) []byte {
	t.Helper()
	if o, err := exec.Command("xorriso", args...).CombinedOutput(); err != nil {
		t.Fatalf("xorriso %q: %v: %s", args, err, o)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func open(t testing.TB, b []byte, lim node.Limits) (*FS, *nodetest.Image, error) {
	m := nodetest.NewImage(b)
	f, err := Open(context.Background(), m, m.Size(), node.Options{Limits: lim})
	if err != nil {
		return nil, m, err
	}
	return f.(*FS), m, nil
}

func TestRockRidge(t *testing.T) {
	fixture.RequireTools(t, "xorriso")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	tests := []struct {
		name      string
		args      func(out string) []string
		hardlinks bool
	}{
		{"mkisofs -R -J", func(out string) []string {
			return []string{"-as", "mkisofs", "-R", "-J", "-V", "VOL", "-o", out, src}
		}, false},
		{"mkisofs --hardlinks", func(out string) []string {
			return []string{"-as", "mkisofs", "-R", "-J", "--hardlinks", "-o", out, src}
		}, true},
		{"native hardlinks", func(out string) []string {
			return []string{"-hardlinks", "on", "-outdev", out, "-map", src, "/"}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.iso")
			img := xorriso(t, out, tt.args(out)...)
			f, m, err := open(t, img, node.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !f.rr {
				t.Fatal("no Rock Ridge found")
			}
			ctx := context.Background()
			ents, err := f.ReadDir(ctx, f.Root())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("open and list the root: read %d bytes of %d", m.BytesRead(), len(img))
			before := m.BytesRead()
			for _, e := range ents {
				if e.Name == "one" {
					if n, err := f.ReadAt(ctx, e.Ino, make([]byte, 10), 0); n != 1 || err != io.EOF {
						t.Errorf("read one: %d, %v", n, err)
					}
				}
			}
			t.Logf("read a 1-byte file: %d bytes", m.BytesRead()-before)
			inos := map[string]node.Ino{}
			compare(t, f, f.Root(), src, "", tt.hardlinks, inos)
			if tt.hardlinks && inos["hard1"] != inos["dir/hard2"] {
				t.Errorf("hard links have Inos %d and %d", inos["hard1"], inos["dir/hard2"])
			}
			// A fresh FS reads every object again from its Ino alone.
			g, _, err := open(t, img, node.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for p, ino := range inos {
				if ino >= extentIno {
					continue // hard-link Inos are known once listed
				}
				a, err := g.Attr(ctx, ino)
				b, _ := f.Attr(ctx, ino)
				if err != nil || a != b {
					t.Errorf("%s: fresh Attr %+v, %v; want %+v", p, a, err, b)
				}
			}
		})
	}
}

// compare walks the source dir and the FS directory ino side by side.
func compare(t *testing.T, f *FS, ino node.Ino, dir, rel string, hardlinks bool, inos map[string]node.Ino) {
	t.Helper()
	ctx := context.Background()
	src, byName := nodetest.MatchDir(t, f, ino, dir)
	check := func(p string, ino node.Ino) {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		a, err := f.Attr(ctx, ino)
		if err != nil {
			t.Fatal(err)
		}
		if ino == 0 || ino > node.MaxIno {
			t.Errorf("%s: ino %d", p, ino)
		}
		if a.Mode != st.Mode || a.Uid != st.Uid || a.Gid != st.Gid {
			t.Errorf("%s: mode %o %d:%d, want %o %d:%d", p, a.Mode, a.Uid, a.Gid, st.Mode, st.Uid, st.Gid)
		}
		if !a.Mtime.Equal(mtime) {
			t.Errorf("%s: mtime %v", p, a.Mtime)
		}
		// xorriso records 1 for directories, whatever their subdirectories.
		if hardlinks && st.Mode&syscall.S_IFMT != syscall.S_IFDIR && a.Nlink != uint32(st.Nlink) {
			t.Errorf("%s: nlink %d, want %d", p, a.Nlink, st.Nlink)
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFCHR && a.Rdev != st.Rdev {
			t.Errorf("%s: rdev %#x, want %#x", p, a.Rdev, st.Rdev)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR && a.Size != st.Size {
			t.Errorf("%s: size %d, want %d", p, a.Size, st.Size)
		}
	}
	check(dir, ino)
	for _, e := range src {
		p := filepath.Join(dir, e.Name())
		ino := byName[e.Name()]
		inos[filepath.Join(rel, e.Name())] = ino
		check(p, ino)
		switch {
		case e.IsDir():
			compare(t, f, ino, p, filepath.Join(rel, e.Name()), hardlinks, inos)
		case e.Type()&os.ModeSymlink != 0:
			want, _ := os.Readlink(p)
			if got, err := f.Readlink(ctx, ino); got != want || err != nil {
				t.Errorf("%s: link %q, %v; want %q", p, got, err, want)
			}
			if _, err := f.ReadAt(ctx, ino, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
				t.Errorf("%s: ReadAt on a symlink: %v", p, err)
			}
		case e.Type().IsRegular():
			readCheck(t, f, ino, p)
		}
	}
}

// readCheck compares the content of ino with the file at p.
func readCheck(t *testing.T, f node.FS, ino node.Ino, p string) {
	t.Helper()
	data := nodetest.CheckFile(t, f, ino, p)
	if len(data) > 10 {
		piece := make([]byte, 7)
		if n, err := f.ReadAt(context.Background(), ino, piece, 3); n != 7 || err != nil || !bytes.Equal(piece, data[3:10]) {
			t.Errorf("%s: read at 3: %q, %v", p, piece[:n], err)
		}
	}
}

// TestWithoutRockRidge checks the Joliet and plain ISO 9660 names, modes
// and contents.
func TestWithoutRockRidge(t *testing.T) {
	fixture.RequireTools(t, "xorriso")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	tests := []struct {
		name  string
		flags []string
		want  map[string]string // name in the image → source path
	}{
		{"joliet", []string{"-joliet", "on"}, map[string]string{
			"Mixed Case.TXT": "Mixed Case.TXT", "one": "one", "big.bin": "big.bin", "s2049": "s2049",
			"dir/nested/deeper/file.txt":                                        "dir/nested/deeper/file.txt", // Joliet's 64 characters, the extension kept
			"a-rock-ridge-name-well-over-sixty-four-characters-long-so-jol.txt": longName,
		}},
		{"plain", []string{"-joliet", "off"}, map[string]string{
			"one": "one", "big.bin": "big.bin", "s2049": "s2049", "dir/nested/deeper/file.txt": "dir/nested/deeper/file.txt",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.iso")
			// xorriso -as mkisofs always writes Rock Ridge; native mode can leave it out.
			img := xorriso(t, out, append(append([]string{"-rockridge", "off"}, tt.flags...), "-outdev", out, "-map", src, "/")...)
			f, _, err := open(t, img, node.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if f.rr || f.joliet != (tt.name == "joliet") {
				t.Fatalf("rr %v joliet %v", f.rr, f.joliet)
			}
			ctx := context.Background()
			for name, srcPath := range tt.want {
				ino := nodetest.Lookup(t, f, name)
				a, err := f.Attr(ctx, ino)
				if err != nil || a.Mode != syscall.S_IFREG|0o444 || a.Nlink != 1 || !a.Mtime.Equal(mtime) {
					t.Errorf("%s: attr %+v, %v", name, a, err)
				}
				readCheck(t, f, ino, filepath.Join(src, srcPath))
			}
			if a, err := f.Attr(ctx, f.Root()); err != nil || a.Mode != syscall.S_IFDIR|0o555 {
				t.Errorf("root: %+v, %v", a, err)
			}
		})
	}
}

// tinyISO builds a small Rock Ridge image in Go: a root with a file, a
// symlink and a continuation area, in 22 blocks.
func tinyISO() []byte {
	const bs = 2048
	b := make([]byte, 22*bs)
	both32 := func(p []byte, v uint32) {
		binary.LittleEndian.PutUint32(p, v)
		binary.BigEndian.PutUint32(p[4:], v)
	}
	rec := func(extent, length uint32, flags byte, name string, su []byte) []byte {
		n := 33 + len(name)
		if len(name)%2 == 0 {
			n++
		}
		r := make([]byte, n, n+len(su))
		r = append(r, su...)
		r[0] = byte(len(r))
		both32(r[2:], extent)
		both32(r[10:], length)
		copy(r[18:], []byte{122, 5, 6, 7, 8, 9, 0})
		r[25] = flags
		r[32] = byte(len(name))
		copy(r[33:], name)
		return r
	}
	px := func(mode, nlink, serial uint32) []byte {
		e := make([]byte, 44)
		copy(e, "PX")
		e[2], e[3] = 44, 1
		for i, v := range []uint32{mode, nlink, 0, 0, serial} {
			both32(e[4+8*i:], v)
		}
		return e
	}
	nm := func(s string) []byte { return append([]byte{'N', 'M', byte(5 + len(s)), 1, 0}, s...) }
	ce := make([]byte, 28)
	copy(ce, "CE")
	ce[2], ce[3] = 28, 1
	both32(ce[4:], 21)
	both32(ce[12:], 0)
	both32(ce[20:], 7)
	pvd := b[16*bs:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	binary.LittleEndian.PutUint16(pvd[128:], bs)
	copy(pvd[156:], rec(18, bs, flagDir, "\x00", nil))
	term := b[17*bs:]
	term[0] = 255
	copy(term[1:], "CD001")
	dir := b[18*bs:]
	sp := []byte{'S', 'P', 7, 1, 0xbe, 0xef, 0}
	var d []byte
	d = append(d, rec(18, bs, flagDir, "\x00", slices.Concat(sp, px(0o40755, 2, 1), ce))...)
	d = append(d, rec(18, bs, flagDir, "\x01", px(0o40755, 2, 1))...)
	d = append(d, rec(19, 5, 0, "FILE.;1", slices.Concat(px(0o100644, 1, 2), nm("file")))...)
	sl := []byte{'S', 'L', 0, 1, 0, 8, 0, 2, 0, 0, 3, 'a', 'b', 'c'}
	sl[2] = byte(len(sl))
	d = append(d, rec(0, 0, 0, "LINK.;1", slices.Concat(px(0o120777, 1, 3), nm("link"), sl))...)
	// a file of two extents: block 19 whole, then 3 bytes of block 20
	d = append(d, rec(19, bs, flagMulti, "MULTI.;1", slices.Concat(px(0o100600, 1, 4), nm("multi")))...)
	d = append(d, rec(20, 3, 0, "MULTI.;1", nil)...)
	copy(dir, d)
	copy(b[19*bs:], "hello")
	copy(b[20*bs:], "abc")
	copy(b[21*bs:], "ST\x04\x01") // the continuation area: a terminator
	return b
}

func TestTiny(t *testing.T) {
	f, _, err := open(t, tinyISO(), node.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ents, err := f.ReadDir(ctx, f.Root())
	if err != nil || len(ents) != 3 || ents[0].Name != "file" || ents[1].Name != "link" || ents[2].Name != "multi" {
		t.Fatalf("%+v, %v", ents, err)
	}
	if l, err := f.Readlink(ctx, ents[1].Ino); l != "/./abc" || err != nil {
		t.Errorf("link %q, %v", l, err)
	}
	buf := make([]byte, 5)
	if n, err := f.ReadAt(ctx, ents[0].Ino, buf, 0); n != 5 || err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v", buf[:n], err)
	}
	multi := ents[2].Ino
	if a, err := f.Attr(ctx, multi); err != nil || a.Size != 2048+3 || a.Mode != syscall.S_IFREG|0o600 {
		t.Errorf("multi-extent attr %+v, %v", a, err)
	}
	buf = make([]byte, 10)
	if n, err := f.ReadAt(ctx, multi, buf, 2045); n != 6 || err != io.EOF || string(buf[:6]) != "\x00\x00\x00abc" {
		t.Errorf("read across the extents: %q, %v", buf[:n], err)
	}
	g, _, _ := open(t, tinyISO(), node.Limits{}) // the extents found again from the Ino alone
	if a, err := g.Attr(ctx, multi); err != nil || a.Size != 2048+3 {
		t.Errorf("fresh multi-extent attr %+v, %v", a, err)
	}
}

func TestCorrupt(t *testing.T) {
	fixture.RequireTools(t, "xorriso")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	out := filepath.Join(t.TempDir(), "out.iso")
	good := xorriso(t, out, "-as", "mkisofs", "-R", "-J", "-o", out, src)
	f, _, err := open(t, good, node.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	rootOff := int(f.root - 1)
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(b []byte) []byte
		lim  node.Limits
	}{
		{"truncated", func(b []byte) []byte { return b[:40<<10] }, node.Limits{}},
		{"bad magic", func(b []byte) []byte { b[16*2048+1] = 'X'; return b }, node.Limits{}},
		{"directory over the limit", func(b []byte) []byte { return b }, node.Limits{DirBytes: 1024}},
		{"record length", func(b []byte) []byte {
			third := rootOff + int(b[rootOff]) + int(b[rootOff+int(b[rootOff])])
			b[third] = 20
			return b
		}, node.Limits{}},
		{"continuation loop", func(b []byte) []byte {
			// every CE points at the root's own "." record, itself holding a CE
			for i := rootOff; i < rootOff+2048-28; i++ {
				if string(b[i:i+4]) == "CE\x1c\x01" {
					binary.LittleEndian.PutUint32(b[i+4:], uint32(rootOff/2048))
					binary.LittleEndian.PutUint32(b[i+12:], uint32(i%2048))
					binary.LittleEndian.PutUint32(b[i+20:], 28)
					break
				}
			}
			return b
		}, node.Limits{}},
		{"root extent beyond the image", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[16*2048+156+2:], 1<<30)
			return b
		}, node.Limits{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := open(t, tt.edit(bytes.Clone(good)), tt.lim)
			if err == nil {
				_, err = f.ReadDir(ctx, f.Root())
			}
			if err == nil {
				_, err = f.Attr(ctx, f.Root())
			}
			if !errors.Is(err, node.ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
			t.Log(err)
		})
	}
}

func FuzzISO9660(f *testing.F) {
	f.Add(tinyISO())
	if _, err := exec.LookPath("xorriso"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "src")
		if err := fixture.WriteTree(src, map[string][]byte{"a": []byte("x"), "d/e": []byte("y")}); err != nil {
			f.Fatal(err)
		}
		os.Symlink("a", filepath.Join(src, "l"))
		out := filepath.Join(dir, "out.iso")
		b := xorriso(f, out, "-as", "mkisofs", "-R", "-J", "-o", out, src)
		f.Add(b[:min(len(b), 64<<10)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, _, err := open(t, b, node.Limits{DirBytes: 64 << 10, Entries: 1000})
		if err != nil {
			return
		}
		nodetest.Touch(fs, 4096)
	})
}

// TestConcurrent walks one FS from several goroutines (for -race).
func TestConcurrent(t *testing.T) {
	fixture.RequireTools(t, "xorriso")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	out := filepath.Join(t.TempDir(), "out.iso")
	img := xorriso(t, out, "-as", "mkisofs", "-R", "-J", "--hardlinks", "-o", out, src)
	f, _, err := open(t, img, node.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 8 {
		go func() { nodetest.Touch(f, 4096); done <- struct{}{} }()
	}
	for range 8 {
		<-done
	}
}
