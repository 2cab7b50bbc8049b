package fat

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

var mtime = time.Date(2021, 3, 4, 5, 6, 8, 0, time.UTC)

// source writes the tree the images hold.
func source(t testing.TB, dir string) {
	t.Helper()
	big := make([]byte, 3<<20+7)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	files := map[string][]byte{
		"empty":         {},
		"one":           {'1'},
		"s512":          bytes.Repeat([]byte{'a'}, 512),
		"s513":          bytes.Repeat([]byte{'b'}, 513),
		"s4096":         bytes.Repeat([]byte{'c'}, 4096),
		"s4097":         bytes.Repeat([]byte{'d'}, 4097),
		"big.bin":       big,
		"lower.txt":     []byte("lower\n"),
		"UPPER.TXT":     []byte("upper\n"),
		"MixedCase.Txt": []byte("mixed\n"),
		"a long name with spaces and ünïcödé — dash.text": []byte("long\n"),
		"deep/er/and/deeper/still/file.txt":               []byte("deep\n"),
		"deep/er/sibling":                                 []byte("sib\n"),
	}
	if err := fixture.WriteTree(dir, files); err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // a directory over several clusters
		p := filepath.Join(dir, "many", "file number "+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Chtimes(p, mtime, mtime)
		}
		return err
	})
}

// makeFAT builds a FAT image of kib KiB holding src.
func makeFAT(t testing.TB, src, out string, bits, kib int, extra ...string) []byte {
	t.Helper()
	args := append([]string{"-F", strconv.Itoa(bits)}, extra...)
	args = append(args, "-C", out, strconv.Itoa(kib))
	if o, err := exec.Command("mkfs.vfat", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v: %s", err, o)
	}
	ents, _ := os.ReadDir(src)
	if len(ents) > 0 {
		args = []string{"-s", "-m", "-i", out}
		for _, e := range ents {
			args = append(args, filepath.Join(src, e.Name()))
		}
		cmd := exec.Command("mcopy", append(args, "::/")...)
		cmd.Env = append(os.Environ(), "TZ=UTC", "MTOOLS_NO_VFAT=0")
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v: %s", err, o)
		}
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

func TestImages(t *testing.T) {
	fixture.RequireTools(t, "mkfs.vfat", "mcopy")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	tests := []struct {
		name  string
		bits  int
		kib   int
		extra []string
	}{
		{"fat32", 32, 65536, nil},
		{"fat16", 16, 32768, []string{"-s", "8"}},
		{"fat12", 12, 8192, []string{"-s", "8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := makeFAT(t, src, filepath.Join(t.TempDir(), "img"), tt.bits, tt.kib, tt.extra...)
			f, m, err := open(t, img, node.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if int(f.g.kind) != tt.bits {
				t.Fatalf("FAT%d, want FAT%d", f.g.kind, tt.bits)
			}
			ctx := context.Background()
			if _, err := f.ReadDir(ctx, f.Root()); err != nil {
				t.Fatal(err)
			}
			t.Logf("open and list the root: read %d bytes of %d", m.BytesRead(), len(img))
			ents, _ := f.ReadDir(ctx, f.Root())
			before := m.BytesRead()
			for _, e := range ents {
				if e.Name == "one" {
					buf := make([]byte, 10)
					if n, err := f.ReadAt(ctx, e.Ino, buf, 0); n != 1 || err != io.EOF {
						t.Errorf("read one: %d, %v", n, err)
					}
				}
			}
			t.Logf("read a 1-byte file: %d bytes", m.BytesRead()-before)
			compare(t, f, f.Root(), src, 0)
		})
	}
}

// compare walks the source dir and the FS directory ino side by side.
func compare(t *testing.T, f *FS, ino node.Ino, dir string, depth int) {
	t.Helper()
	ctx := context.Background()
	src, byName := nodetest.MatchDir(t, f, ino, dir)
	a, err := f.Attr(ctx, ino)
	if err != nil {
		t.Fatal(err)
	}
	subdirs := 0
	for _, e := range src {
		if e.IsDir() {
			subdirs++
		}
	}
	if a.Nlink != uint32(2+subdirs) || a.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("%s: nlink %d mode %o", dir, a.Nlink, a.Mode)
	}
	for _, e := range src {
		p := filepath.Join(dir, e.Name())
		ino := byName[e.Name()]
		a, err := f.Attr(ctx, ino)
		if err != nil {
			t.Fatal(err)
		}
		if ino > node.MaxIno || ino == 0 {
			t.Errorf("%s: ino %d", p, ino)
		}
		if !a.Mtime.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", p, a.Mtime, mtime)
		}
		if e.IsDir() {
			compare(t, f, ino, p, depth+1)
			if _, err := f.ReadAt(ctx, ino, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
				t.Errorf("%s: ReadAt on a directory: %v", p, err)
			}
			continue
		}
		data := nodetest.CheckFile(t, f, ino, p)
		if a.Mode != syscall.S_IFREG|0o644 || a.Size != int64(len(data)) || a.Nlink != 1 || a.Uid != 0 {
			t.Errorf("%s: attr %+v", p, a)
		}
		// Unaligned reads in pieces, as FUSE does.
		var pieced []byte
		for off := 0; off < len(data); {
			buf := make([]byte, 100_003)
			n, err := f.ReadAt(ctx, ino, buf, int64(off))
			if n == 0 && err != nil {
				t.Fatalf("%s at %d: %v", p, off, err)
			}
			pieced = append(pieced, buf[:n]...)
			off += n
		}
		if !bytes.Equal(pieced, data) {
			t.Errorf("%s: pieced read differs", p)
		}
	}
}

// find returns the Ino and entry of the root-level name.
func find(t *testing.T, f *FS, name string) (node.Ino, entry) {
	t.Helper()
	ents, err := f.ReadDir(context.Background(), f.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name == name {
			en, _ := f.entry(context.Background(), e.Ino)
			return e.Ino, en
		}
	}
	t.Fatalf("no %s", name)
	return 0, entry{}
}

// setFAT sets the FAT entry of cluster c in every copy of the FAT16 img.
func setFAT16(img []byte, g geometry, c, v uint32) {
	for i := int64(0); i*g.fatLen < g.rootOff-g.fatOff; i++ {
		binary.LittleEndian.PutUint16(img[g.fatOff+i*g.fatLen+int64(c)*2:], uint16(v))
	}
}

func TestCorrupt(t *testing.T) {
	fixture.RequireTools(t, "mkfs.vfat", "mcopy")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	good := makeFAT(t, src, filepath.Join(t.TempDir(), "img"), 16, 32768, "-s", "8")
	ctx := context.Background()
	f, _, err := open(t, good, node.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, big := find(t, f, "big.bin")
	manyIno, many := find(t, f, "many")

	t.Run("bad magic", func(t *testing.T) {
		b := bytes.Clone(good)
		b[510] = 0
		if _, _, err := open(t, b, node.Limits{}); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		f, _, err := open(t, good[:1<<20], node.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ino, _ := find(t, f, "big.bin")
		if _, err := f.ReadAt(ctx, ino, make([]byte, 4<<20), 0); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("file chain loop", func(t *testing.T) {
		b := bytes.Clone(good)
		setFAT16(b, f.g, big.cluster+5, big.cluster+2)
		f, _, err := open(t, b, node.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ino, _ := find(t, f, "big.bin")
		_, err = f.ReadAt(ctx, ino, make([]byte, 10), 0)
		if !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
		t.Log(err)
	})
	t.Run("directory chain loop", func(t *testing.T) {
		b := bytes.Clone(good)
		setFAT16(b, f.g, many.cluster, many.cluster)
		f, _, err := open(t, b, node.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadDir(ctx, manyIno)
		if !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
		t.Log(err)
	})
	t.Run("chain shorter than size", func(t *testing.T) {
		b := bytes.Clone(good)
		setFAT16(b, f.g, big.cluster+1, 0xffff)
		f, _, err := open(t, b, node.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ino, _ := find(t, f, "big.bin")
		if _, err = f.ReadAt(ctx, ino, make([]byte, 10), 0); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("directory over the limit", func(t *testing.T) {
		f, _, err := open(t, good, node.Limits{DirBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadDir(ctx, manyIno); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
		if _, err := f.ReadDir(ctx, f.Root()); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("root of 16 KiB: got %v", err)
		}
	})
	t.Run("entries over the limit", func(t *testing.T) {
		f, _, err := open(t, good, node.Limits{Entries: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadDir(ctx, manyIno); !errors.Is(err, node.ErrCorrupt) {
			t.Errorf("got %v", err)
		}
	})
}

func FuzzFAT(f *testing.F) {
	if _, err := exec.LookPath("mcopy"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "src")
		files := map[string][]byte{"lower.txt": []byte("x"), "A Long Name.txt": bytes.Repeat([]byte("y"), 3000), "d/e/F": nil}
		if err := fixture.WriteTree(src, files); err != nil {
			f.Fatal(err)
		}
		f.Add(makeFAT(f, src, filepath.Join(dir, "12"), 12, 64, "-s", "1", "-r", "16"))
	}
	// A FAT12 boot sector built here: 512-byte sectors, 1 per cluster.
	b := make([]byte, 16<<10)
	b[0], b[510], b[511] = 0xeb, 0x55, 0xaa
	binary.LittleEndian.PutUint16(b[0x0b:], 512)
	b[0x0d], b[0x0e], b[0x10], b[0x11] = 1, 1, 1, 16
	binary.LittleEndian.PutUint16(b[0x13:], 32)
	binary.LittleEndian.PutUint16(b[0x16:], 1)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := node.Limits{DirBytes: 64 << 10, Entries: 1000}
		fs, _, err := open(t, b, lim)
		if err != nil {
			return
		}
		nodetest.Touch(fs, 8192)
	})
}

// TestConcurrent walks one FS from several goroutines (for -race).
func TestConcurrent(t *testing.T) {
	fixture.RequireTools(t, "mkfs.vfat", "mcopy")
	src := filepath.Join(t.TempDir(), "src")
	source(t, src)
	img := makeFAT(t, src, filepath.Join(t.TempDir(), "img"), 12, 8192, "-s", "8")
	f, _, err := open(t, img, node.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 8 {
		go func() { nodetest.Touch(f, 8192); done <- struct{}{} }()
	}
	for range 8 {
		<-done
	}
}
