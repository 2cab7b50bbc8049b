package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
)

// smallImage builds a 4 MiB ext4 image holding a small file, a file whose
// extent tree has an index node, a symlink and a directory.
func smallImage(t testing.TB) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "dir"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "small"), bytes.Repeat([]byte("small"), 1000), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "dir", "x"), []byte("x"), 0o644))
	must(t, os.Symlink("small", filepath.Join(src, "link")))
	fr, err := os.Create(filepath.Join(src, "frag"))
	must(t, err)
	for i := range int64(10) {
		_, err := fr.WriteAt([]byte("data"), i*8192)
		must(t, err)
	}
	fr.Close()
	img := filepath.Join(t.TempDir(), "img")
	mkfs(t, src, img, 4<<20)
	b, err := os.ReadFile(img)
	must(t, err)
	return b
}

// locations are where, in an image, the corruptions are made. the byte offsets the corruptions change.
type locations struct {
	fs        *fsys
	gd0       int64 // group 0's descriptor
	root      int64 // the root inode
	small     int64 // the inode of "small"
	frag      int64 // the inode of "frag"
	fragLeaf  int64 // frag's leaf extent node
	rootBlock int64 // the root directory's first block
}

func locate(t *testing.T, img []byte) locations {
	t.Helper()
	ctx := context.Background()
	f, err := Open(ctx, nodetest.NewImage(img), int64(len(img)), node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := f.(*fsys)
	inodeOff := func(name string) (int64, *inode) {
		in := lookupInode(t, fs, name)
		table, err := fs.inodeTable(ctx, uint64(in.ino-1)/uint64(fs.sb.inodesPerGroup))
		must(t, err)
		return int64(table)*fs.sb.blockSize + int64((in.ino-1)%fs.sb.inodesPerGroup)*fs.sb.inodeSize, in
	}
	l := locations{fs: fs, gd0: fs.sb.descOffset(0)}
	var small *inode
	l.small, small = inodeOff("small")
	if r, err := fs.mapExtent(ctx, small, 0); err != nil || r.zero {
		t.Fatalf("small: block 0: %+v, %v: want data", r, err)
	}
	table, err := fs.inodeTable(ctx, 0)
	must(t, err)
	l.root = int64(table)*fs.sb.blockSize + (rootIno-1)*fs.sb.inodeSize
	var frag *inode
	l.frag, frag = inodeOff("frag")
	h, err := parseExtentHeader(frag.iblock[:])
	if err != nil || h.depth != 1 {
		t.Fatalf("frag: extent root %+v %v, want depth 1", h, err)
	}
	leaf := uint64(binary.LittleEndian.Uint32(frag.iblock[extentEntrySize+4:]))
	l.fragLeaf = int64(leaf) * fs.sb.blockSize
	root, err := fs.inode(ctx, rootIno)
	must(t, err)
	r, err := fs.mapExtent(ctx, root, 0)
	must(t, err)
	l.rootBlock = int64(r.phys) * fs.sb.blockSize
	return l
}

func TestCorrupt(t *testing.T) {
	base := smallImage(t)
	l := locate(t, base)
	le := binary.LittleEndian
	blocks := uint32(l.fs.sb.blocksCount)
	put32 := func(off int64, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	put16 := func(off int64, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], v); return b }
	}
	const iblock = 0x28
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		// open says Open must fail; otherwise the walk must.
		open bool
	}{
		{"truncated-superblock", func(b []byte) []byte { return b[:1500] }, true},
		{"truncated-after-root", func(b []byte) []byte {
			bs := l.fs.sb.blockSize
			return b[:(l.root+bs)/bs*bs]
		}, false},
		{"bad-magic", put16(sbOffset+0x38, 0x1234), true},
		{"log-block-size", put32(sbOffset+0x18, 7), true},
		{"no-inodes-per-group", put32(sbOffset+0x28, 0), true},
		{"inode-size", put16(sbOffset+0x58, 100), true},
		{"bad-group-descriptor", put32(l.gd0+0x8, 0xFFFFFFF0), true},
		{"root-not-dir", put16(l.root, 0o100644), true},
		{"extent-past-end", put32(l.small+iblock+extentEntrySize+8, blocks+5), false},
		{"extent-tree-loop", func(b []byte) []byte {
			// The leaf claims to be an index node pointing at itself.
			le.PutUint16(b[l.fragLeaf+6:], 1)
			le.PutUint32(b[l.fragLeaf+extentEntrySize+4:], uint32(l.fragLeaf/l.fs.sb.blockSize))
			return b
		}, false},
		{"extent-depth-6", put16(l.frag+iblock+6, 6), false},
		{"extent-bad-magic", put16(l.fragLeaf, 0xBEEF), false},
		{"extent-too-many-entries", put16(l.small+iblock+2, 5), false},
		{"dirent-rec-len-0", put16(l.rootBlock+4, 0), false},
		{"dirent-rec-len-past-block", put16(l.rootBlock+24+4, 0xFFF0), false},
		{"dirent-rec-len-unaligned", put16(l.rootBlock+24+4, 13), false},
		{"dirent-inode-out-of-range", put32(l.rootBlock+24, 0xFFFFFFF0), false},
		{"inode-mode-unused", put16(l.small, 0), false},
		{"directory-huge", put32(l.root+0x6C, 1<<10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := tt.corrupt(append([]byte(nil), base...))
			ctx := context.Background()
			fs, err := Open(ctx, nodetest.NewImage(img), int64(len(img)), node.Options{})
			if tt.open {
				if !errors.Is(err, node.ErrCorrupt) {
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
				t.Logf("Open: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			errs := walk(ctx, fs, 1000, 1<<20)
			if len(errs) == 0 {
				t.Fatal("walk found nothing wrong")
			}
			if err := allCorrupt(errs); err != nil {
				t.Errorf("error not wrapping ErrCorrupt: %v", err)
			}
			t.Logf("walk: %v", errs)
		})
	}
}

// errReader fails every read after the first n.
type errReader struct {
	r    node.ReaderAt
	left atomic.Int64
}

var errNetwork = errors.New("network down")

func (e *errReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if e.left.Add(-1) < 0 {
		return 0, errNetwork
	}
	return e.r.ReadAt(ctx, p, off)
}

// TestReaderError checks a ReaderAt's own errors are passed on, not taken
// for corruption.
func TestReaderError(t *testing.T) {
	img := smallImage(t)
	ctx := context.Background()
	if _, err := Open(ctx, &errReader{r: nodetest.NewImage(img)}, int64(len(img)), node.Options{}); !errors.Is(err, errNetwork) || errors.Is(err, node.ErrCorrupt) {
		t.Errorf("Open: %v, want the reader's error", err)
	}
	r := &errReader{r: nodetest.NewImage(img)}
	r.left.Store(1 << 30)
	fs, err := Open(ctx, r, int64(len(img)), node.Options{})
	must(t, err)
	r.left.Store(0)
	errs := walk(ctx, fs, 100, 1<<20)
	if len(errs) == 0 {
		t.Fatal("walk with a failing reader: no error")
	}
	for _, err := range errs {
		if !errors.Is(err, errNetwork) || errors.Is(err, node.ErrCorrupt) {
			t.Errorf("%v: want the reader's error", err)
		}
	}
}

// TestUninitExtent marks an extent uninitialized (its length over 32768):
// it reads as zeros.
func TestUninitExtent(t *testing.T) {
	img := smallImage(t)
	l := locate(t, img)
	le := binary.LittleEndian
	root := img[l.small+0x28:]
	if le.Uint16(root[6:]) != 0 {
		t.Fatal("small: extent tree of depth > 0")
	}
	for i := range int(le.Uint16(root[2:])) {
		e := root[extentEntrySize*(1+i):]
		le.PutUint16(e[4:], le.Uint16(e[4:])+maxInitExtentLen)
	}
	ctx := context.Background()
	f, err := Open(ctx, nodetest.NewImage(img), int64(len(img)), node.Options{})
	must(t, err)
	in := lookupInode(t, f.(*fsys), "small")
	got, err := readAll(f, node.Ino(in.ino), 777)
	must(t, err)
	if len(got) != 5000 || !isZero(got) {
		t.Errorf("uninitialized extent: %d bytes, zero %v; want 5000 zeros", len(got), isZero(got))
	}
}
