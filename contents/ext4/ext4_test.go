package ext4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
)

// variants are the mkfs.ext4 options the tree is built with.
var variants = []struct {
	name string
	size int64
	args []string
}{
	{"ext4", 48 << 20, nil},
	{"1k-blocks", 48 << 20, []string{"-b", "1024"}},
	{"2k-blocks", 48 << 20, []string{"-b", "2048"}},
	{"64k-blocks", 96 << 20, []string{"-b", "65536", "-N", "4096"}},
	{"ext2", 48 << 20, []string{"-t", "ext2"}},
	{"ext3", 48 << 20, []string{"-t", "ext3"}},
	{"ext3-1k", 48 << 20, []string{"-t", "ext3", "-b", "1024"}},
	{"inline-data", 48 << 20, []string{"-O", "inline_data"}},
	{"no-64bit", 48 << 20, []string{"-O", "^64bit"}},
	{"inode-128", 48 << 20, []string{"-I", "128"}},
	{"meta-bg", 48 << 20, []string{"-b", "1024", "-O", "meta_bg,^resize_inode"}},
}

// bigSize crosses several block groups of 1 KiB blocks (8 MiB each), so the
// file has several extents there.
const bigSize = 9<<20 + 333

func TestTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, bigSize)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			mkfs(t, src, img, v.size, v.args...)
			indexDirs(t, img)
			fs, _ := openImage(t, img, node.Options{})
			compareTree(t, fs, src)
			t.Run("unaligned", func(t *testing.T) {
				for _, name := range []string{"big", "sparse", "sparse-far", "fragmented", "sizes/f65537"} {
					checkRuns(t, fs, src, name)
				}
			})
			t.Run("htree", func(t *testing.T) {
				in := lookupInode(t, fs, "many")
				if in.flags&0x1000 == 0 {
					t.Errorf("directory many (2000 entries) has no hash tree index: flags %#x", in.flags)
				}
			})
			if fs.sb.incompat&0x8000 != 0 {
				t.Run("inline", func(t *testing.T) {
					for _, name := range []string{"sizes/f1", "sizes/f100", "a/b/c", "modes"} {
						if in := lookupInode(t, fs, name); in.inline == nil {
							t.Errorf("%s: flags %#x: not inline", name, in.flags)
						}
					}
				})
			}
			if fs.sb.incompat&0x40 != 0 {
				t.Run("extent-depth", func(t *testing.T) {
					in := lookupInode(t, fs, "fragmented")
					h, err := parseExtentHeader(in.iblock[:])
					if err != nil || h.depth < 1 {
						t.Errorf("fragmented: extent root %+v, %v: want an index node", h, err)
					}
				})
			}
		})
	}
}

// lookupInode walks path from the root of fs.
func lookupInode(t *testing.T, fs *fsys, path string) *inode {
	t.Helper()
	in, err := fs.inode(context.Background(), nodetest.Lookup(t, fs, path))
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// compareTree walks src and fs side by side and compares every object.
func compareTree(t *testing.T, fs *fsys, src string) {
	ctx := context.Background()
	links := map[uint64]node.Ino{} // source inode → FS Ino
	seen := map[node.Ino]uint64{}
	count := 0
	var walk func(dir string, ino node.Ino)
	walk = func(dir string, ino node.Ino) {
		ents, err := fs.ReadDir(ctx, ino)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", dir, err)
		}
		want, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			if dir == src && e.Name == "lost+found" {
				continue
			}
			got = append(got, e.Name)
		}
		var names []string
		for _, e := range want {
			names = append(names, e.Name())
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			t.Errorf("%s: names %d %.10q, want %d %.10q", dir, len(got), got, len(names), names)
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name)
			st, err := os.Lstat(p)
			if err != nil {
				continue
			}
			count++
			compareObject(t, fs, e.Ino, p, st.Sys().(*syscall.Stat_t))
			sys := st.Sys().(*syscall.Stat_t)
			if prev, ok := links[sys.Ino]; ok && prev != e.Ino {
				t.Errorf("%s: Ino %d, its hard link has %d", p, e.Ino, prev)
			}
			if prev, ok := seen[e.Ino]; ok && prev != sys.Ino {
				t.Errorf("%s: Ino %d shared with another source file", p, e.Ino)
			}
			links[sys.Ino], seen[e.Ino] = e.Ino, sys.Ino
			if st.IsDir() {
				walk(p, e.Ino)
			}
		}
	}
	walk(src, fs.Root())
	if count < 2000 {
		t.Errorf("compared %d objects, want the whole tree", count)
	}
}

func compareObject(t *testing.T, fs *fsys, ino node.Ino, path string, st *syscall.Stat_t) {
	ctx := context.Background()
	a, err := fs.Attr(ctx, ino)
	if err != nil {
		t.Errorf("Attr %s: %v", path, err)
		return
	}
	if a.Mode != st.Mode || a.Uid != st.Uid || a.Gid != st.Gid {
		t.Errorf("%s: mode %#o uid %d gid %d, want %#o %d %d", path, a.Mode, a.Uid, a.Gid, st.Mode, st.Uid, st.Gid)
	}
	if a.Mtime.Unix() != st.Mtim.Sec {
		t.Errorf("%s: mtime %v, want %d s", path, a.Mtime, st.Mtim.Sec)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR && uint64(a.Nlink) != st.Nlink {
		t.Errorf("%s: nlink %d, want %d", path, a.Nlink, st.Nlink)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		if a.Size != st.Size && !inlineSparseBug(fs, path) {
			t.Errorf("%s: size %d, want %d", path, a.Size, st.Size)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want = mkfsInlineBug(t, fs, path, want)
		got, err := readAll(fs, ino, 100_003)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
		} else if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Errorf("%s: content (%d bytes) differs from the source (%d)", path, len(got), len(want))
		}
	case syscall.S_IFLNK:
		want, _ := os.Readlink(path)
		got, err := fs.Readlink(ctx, ino)
		if err != nil || got != want {
			t.Errorf("Readlink %s = %q, %v; want %q", path, got, err, want)
		}
		if a.Size != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", path, a.Size, len(want))
		}
	case syscall.S_IFCHR, syscall.S_IFBLK:
		if a.Rdev != st.Rdev {
			t.Errorf("%s: rdev %#x, want %#x", path, a.Rdev, st.Rdev)
		}
	case syscall.S_IFDIR:
		if _, err := fs.ReadAt(ctx, ino, make([]byte, 1), 0); !errors.Is(err, node.ErrNotFile) {
			t.Errorf("ReadAt on directory %s: %v, want ErrNotFile", path, err)
		}
		if _, err := fs.Readlink(ctx, ino); !errors.Is(err, node.ErrNotLink) {
			t.Errorf("Readlink on directory %s: %v, want ErrNotLink", path, err)
		}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		if _, err := fs.ReadDir(ctx, ino); !errors.Is(err, node.ErrNotDir) {
			t.Errorf("ReadDir on %s: %v, want ErrNotDir", path, err)
		}
	}
}

// readAll reads file ino in pieces of n bytes, checking the io.ReaderAt
// contract on the way.
func readAll(fs node.FS, ino node.Ino, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := fs.ReadAt(context.Background(), ino, buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if k != n {
			return out, errors.New("short read without an error")
		}
	}
}

// checkRuns reads file name at unaligned offsets around the start of every
// run of blocks (extent, hole, contiguous pointers), above all reads that
// begin inside the first block of a later extent, and compares with the
// source.
func checkRuns(t *testing.T, fs *fsys, src, name string) {
	ctx := context.Background()
	want, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		t.Fatal(err)
	}
	in := lookupInode(t, fs, name)
	want = mkfsInlineBug(t, fs, name, want)
	bs := fs.sb.blockSize
	blocks := uint64((in.size + bs - 1) / bs)
	var starts []uint64
	data := 0
	for lblk := uint64(0); lblk < blocks; {
		var r run
		if in.inline != nil {
			r = run{count: blocks}
		} else if in.flags&flagExtents != 0 {
			r, err = fs.mapExtent(ctx, in, lblk)
		} else {
			r, err = fs.mapIndirect(ctx, in, lblk, blocks-lblk)
		}
		if err != nil {
			t.Fatalf("%s: mapping block %d: %v", name, lblk, err)
		}
		if !r.zero {
			data++
		}
		starts = append(starts, lblk)
		lblk += r.count
	}
	if (name == "fragmented" || name == "sparse") && data < 2 {
		t.Errorf("%s: %d runs of data, want several", name, data)
	}
	ino := node.Ino(in.ino)
	reads := 0
	for _, s := range starts {
		base := int64(s) * bs
		for _, d := range []int64{-3, 0, 1, 5, bs/2 + 1, bs - 1} {
			for _, n := range []int64{1, 7, bs, 3*bs + 11} {
				off := base + d
				if off < 0 || off >= int64(len(want)) {
					continue
				}
				p := make([]byte, n)
				k, err := fs.ReadAt(ctx, ino, p, off)
				end := min(off+n, int64(len(want)))
				if int64(k) != end-off || (err != nil && !(err == io.EOF && off+n > int64(len(want)))) {
					t.Fatalf("%s: ReadAt(%d bytes at %d) = %d, %v; want %d", name, n, off, k, err, end-off)
				}
				if !bytes.Equal(p[:k], want[off:end]) {
					t.Fatalf("%s: %d bytes at %d differ from the source (run at block %d)", name, n, off, s)
				}
				reads++
			}
		}
	}
	t.Logf("%s: %d runs (%d of data), %d reads compared", name, len(starts), data, reads)
}

// inlineSparseBug says whether path is the sparse file in an image with
// inline data: mke2fs 1.47 -d records such a file's size as the end of its
// last extent, dropping the trailing hole.
func inlineSparseBug(fs *fsys, path string) bool {
	return fs.sb.incompat&0x8000 != 0 && filepath.Base(path) == "sparse"
}

// mkfsInlineBug cuts want to the size mke2fs recorded (see inlineSparseBug).
func mkfsInlineBug(t *testing.T, fs *fsys, path string, want []byte) []byte {
	if !inlineSparseBug(fs, path) {
		return want
	}
	in := lookupInode(t, fs, "sparse")
	t.Logf("%s: mke2fs recorded %d of %d bytes", path, in.size, len(want))
	return want[:min(int64(len(want)), in.size)]
}
