package contents

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// mapFS is a file system held in maps, for what a real image cannot be
// made to do on demand: panic, or list a directory in two places.
type mapFS struct {
	attrs map[node.Ino]node.Attr
	dirs  map[node.Ino][]node.DirEntry
	panic bool
}

func (m *mapFS) Root() node.Ino { return 1 }
func (m *mapFS) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	if m.panic {
		var s []int
		_ = s[ino] // index out of range
	}
	a, ok := m.attrs[ino]
	if !ok {
		return node.Attr{}, syscall.ENOENT
	}
	return a, nil
}
func (m *mapFS) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	return m.dirs[ino], nil
}
func (m *mapFS) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	return "", node.ErrNotLink
}
func (m *mapFS) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	return 0, node.ErrNotFile
}

func de(name string, ino node.Ino) node.DirEntry { return node.DirEntry{Name: name, Ino: ino} }

func dirAttr() node.Attr  { return node.Attr{Mode: syscall.S_IFDIR | 0o755} }
func fileAttr() node.Attr { return node.Attr{Mode: syscall.S_IFREG | 0o644} }

func names(es []Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Name)
	}
	return strings.Join(s, ",")
}

func TestListLeavesOutUnsafeNamesAndLoops(t *testing.T) {
	fs := &mapFS{
		attrs: map[node.Ino]node.Attr{1: dirAttr(), 2: dirAttr(), 3: fileAttr(), 4: dirAttr()},
		dirs: map[node.Ino][]node.DirEntry{
			1: {de("sub", 2), de("a/b", 3), de("..", 2), de(".", 1), de("", 3), de("nul\x00", 3), de("file", 3), de("file", 3), de("other", 4), de("same", 4)},
			// sub lists the root (a loop) and "other", which the root lists too,
			// under two names (directory hard links); the file may have links
			// anywhere.
			2: {de("up", 1), de("again", 4), de("link", 3)},
		},
	}
	var logs bytes.Buffer
	tr := newTree(fs, Squashfs, "root.squashfs", node.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	top, err := tr.List(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(top); got != "sub,file,other" {
		t.Fatalf("root lists %q, want sub,file,other", got)
	}
	sub, err := tr.List(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(sub); got != "link" {
		t.Fatalf("sub lists %q, want only link", got)
	}
	// Listing again gives the same: a directory stays where it was first found.
	if again, _ := tr.List(ctx, 1); names(again) != "sub,file,other" {
		t.Fatalf("second listing of the root: %q", names(again))
	}
	if n := strings.Count(logs.String(), "entries left out"); n != 3 {
		t.Fatalf("%d log lines for left-out entries, want one per listing that left some out (3):\n%s", n, logs.String())
	}
}

func TestListLimitsEntries(t *testing.T) {
	fs := &mapFS{attrs: map[node.Ino]node.Attr{1: dirAttr(), 2: fileAttr()}, dirs: map[node.Ino][]node.DirEntry{}}
	for _, n := range []string{"a", "b", "c", "d"} {
		fs.dirs[1] = append(fs.dirs[1], node.DirEntry{Name: n, Ino: 2})
	}
	tr := newTree(fs, Ext4, "disk.img", node.Options{Limits: node.Limits{Entries: 2}})
	got, err := tr.List(context.Background(), 1)
	if err != nil || names(got) != "a,b" {
		t.Fatalf("List = %q, %v; want a,b", names(got), err)
	}
}

func TestPanicsBecomeCorruptOnceLogged(t *testing.T) {
	fs := &mapFS{attrs: map[node.Ino]node.Attr{}, panic: true}
	var logs bytes.Buffer
	tr := newTree(fs, Ext4, "disk.img", node.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		_, err := tr.Attr(context.Background(), 7)
		if !errors.Is(err, node.ErrCorrupt) || !strings.Contains(err.Error(), "disk.img") {
			t.Fatalf("Attr after a panic: %v, want an error wrapping ErrCorrupt naming the layer", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for three corrupt reads, want 1:\n%s", n, logs.String())
	}
}

func TestReadlinkRefusesNUL(t *testing.T) {
	tr := newTree(linkFS{"a\x00b"}, Squashfs, "x", node.Options{})
	if _, err := tr.Readlink(context.Background(), 2); !errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("Readlink of a target with NUL: %v", err)
	}
}

type linkFS struct{ target string }

func (l linkFS) Root() node.Ino                                             { return 1 }
func (l linkFS) Attr(context.Context, node.Ino) (node.Attr, error)          { return dirAttr(), nil }
func (l linkFS) ReadDir(context.Context, node.Ino) ([]node.DirEntry, error) { return nil, nil }
func (l linkFS) Readlink(context.Context, node.Ino) (string, error)         { return l.target, nil }
func (l linkFS) ReadAt(context.Context, node.Ino, []byte, int64) (int, error) {
	return 0, node.ErrNotFile
}

func TestDetect(t *testing.T) {
	at := func(off int, magic string) heads {
		b := make([]byte, headLen)
		copy(b[off:], magic)
		return heads{head: b}
	}
	fat := at(0, "\xeb\x58\x90")
	fat.head[11], fat.head[12] = 0, 2 // 512-byte sectors
	copy(fat.head[82:], "FAT32   ")
	fat.head[510], fat.head[511] = 0x55, 0xAA
	mbr := at(510, "\x55\xaa")
	for _, c := range []struct {
		name string
		h    heads
		want Format
	}{
		{"squashfs", at(0, "hsqs"), Squashfs},
		{"iso", heads{head: make([]byte, headLen), iso: []byte("\x01CD001\x01")}, ISO9660},
		{"gpt", at(512, "EFI PART"), GPT},
		{"gpt 4k", at(4096, "EFI PART"), GPT},
		{"ext4", at(1080, "\x53\xef"), Ext4},
		{"fat32", fat, FAT},
		{"mbr", mbr, MBR},
		{"cpio", at(0, "070701"), Cpio},
		{"cpio after padding", at(512, "070701"), Cpio},
		{"gzip", at(0, "\x1f\x8b\x08"), Cpio},
		{"zstd", at(0, "\x28\xb5\x2f\xfd"), Cpio},
		{"xz", at(0, "\xfd7zXZ\x00"), Cpio},
		{"lz4", at(0, "\x02\x21\x4c\x18"), Cpio},
		{"zeros", at(0, ""), Unknown},
		{"short", heads{head: []byte("hs")}, Unknown},
		{"empty", heads{}, Unknown},
	} {
		if got := detect(c.h); got != c.want {
			t.Errorf("%s: detect = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestListLimitsDepth(t *testing.T) {
	fs := &mapFS{attrs: map[node.Ino]node.Attr{}, dirs: map[node.Ino][]node.DirEntry{}}
	for i := node.Ino(1); i <= 10; i++ {
		fs.attrs[i] = dirAttr()
		fs.dirs[i] = []node.DirEntry{de("d", i+1)}
	}
	fs.attrs[11] = dirAttr()
	tr := newTree(fs, Squashfs, "x", node.Options{Limits: node.Limits{Depth: 3}})
	ctx := context.Background()
	for i := node.Ino(1); i <= 3; i++ {
		if got, err := tr.List(ctx, i); err != nil || names(got) != "d" {
			t.Fatalf("depth %d lists %q, %v", i, names(got), err)
		}
	}
	if got, _ := tr.List(ctx, 4); len(got) != 0 {
		t.Fatalf("a directory at depth 4 is listed under a limit of 3: %q", names(got))
	}
}

// cutReader serves the image's first bytes and cuts every later read short,
// as a registry that drops connections mid-body does.
type cutReader struct {
	b     []byte
	after int64
}

func (c cutReader) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if off+int64(len(p)) > c.after {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, c.b[off:]), nil
}

func TestFailedFetchIsNotAnEmptyImage(t *testing.T) {
	fixture.RequireTools(t, "mksquashfs")
	d := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 64<<10)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	// The noise puts the tables past the first bytes detection reads.
	if err := fixture.WriteTree(filepath.Join(d, "src"), map[string][]byte{"etc/os-release": []byte("ID=x\n"), "noise": noise}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(d, "sq")
	if err := fixture.MakeSquashfsWith(context.Background(), filepath.Join(d, "src"), img, "-comp", "gzip"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(img)
	if err != nil || len(b) < 2*headLen {
		t.Fatalf("%d bytes of squashfs, %v; want the tables past %d", len(b), err, 2*headLen)
	}
	_, err = Open(context.Background(), cutReader{b, headLen}, int64(len(b)), "sq", node.Options{})
	if err == nil || !IsFetchError(err) || errors.Is(err, node.ErrCorrupt) {
		t.Fatalf("Open with its reads cut short: %v; want a fetch error to try again, not an empty or corrupt image", err)
	}
	tr, err := Open(context.Background(), cutReader{b, int64(len(b))}, int64(len(b)), "sq", node.Options{})
	if err != nil || tr.Format() != Squashfs {
		t.Fatalf("Open once the reads work: %v, format %q", err, tr.Format())
	}
}
