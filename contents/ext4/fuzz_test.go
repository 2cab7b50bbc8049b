package ext4

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/contents/node"
)

// fuzzImages builds small images (128 KiB, 1 KiB blocks, their trailing
// zeros cut: about 40 KiB) of a tree with
// a fragmented file, a directory, fast and slow symlinks and a fifo: with
// extents, with block maps (ext2) and with inline data.
func fuzzImages(t testing.TB) [][]byte {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "d", "e"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d", "small"), []byte("hello\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "d", "e", "f"), []byte(strings.Repeat("abc", 500)), 0o600))
	must(t, os.Symlink("d/small", filepath.Join(src, "fast")))
	must(t, os.Symlink(strings.Repeat("slow/", 20), filepath.Join(src, "slow")))
	fr, err := os.Create(filepath.Join(src, "frag"))
	must(t, err)
	for i := range int64(6) {
		_, err := fr.WriteAt([]byte("fragment"), i*3000)
		must(t, err)
	}
	fr.Close()
	var out [][]byte
	for _, args := range [][]string{
		{"-b", "1024", "-N", "32"},
		{"-t", "ext2", "-b", "1024", "-N", "32"},
		{"-b", "1024", "-N", "32", "-O", "inline_data"},
	} {
		img := filepath.Join(t.TempDir(), "img")
		mkfs(t, src, img, 128<<10, args...)
		b, err := os.ReadFile(img)
		must(t, err)
		out = append(out, bytes.TrimRight(b, "\x00"))
	}
	return out
}

// FuzzExt4 opens the input as an ext4 image and walks it, bounded: it must
// not panic, and everything it finds wrong must wrap node.ErrCorrupt. The
// image is the input followed by zeros up to fuzzSize, so that the seeds
// are small and the mutations go to what is not zero.
func FuzzExt4(f *testing.F) {
	images := fuzzImages(f)
	le := binary.LittleEndian
	for _, img := range images {
		f.Add(img)
		// Mutated headers: 64-bit group descriptors, odd block and inode
		// sizes, a huge group count, meta_bg.
		for _, m := range []func(b []byte){
			func(b []byte) { le.PutUint32(b[sbOffset+0x60:], le.Uint32(b[sbOffset+0x60:])|incompat64Bit) },
			func(b []byte) { le.PutUint32(b[sbOffset+0x18:], 2) },
			func(b []byte) { le.PutUint16(b[sbOffset+0x58:], 1024) },
			func(b []byte) { le.PutUint32(b[sbOffset+0x4:], 0xFFFFFFFF) },
			func(b []byte) { le.PutUint32(b[sbOffset+0x60:], le.Uint32(b[sbOffset+0x60:])|incompatMetaBG) },
		} {
			b := append([]byte(nil), img...)
			m(b)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		ctx := context.Background()
		opt := node.Options{Limits: node.Limits{Entries: 256, DirBytes: 256 << 10, Objects: 512, LinkBytes: 1024}}
		size := max(int64(len(img)), fuzzSize)
		fs, err := Open(ctx, zeroPadded(img), size, opt)
		if err != nil {
			if err := allCorrupt([]error{err}); err != nil {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		if err := allCorrupt(walk(ctx, fs, 300, 256<<10)); err != nil {
			t.Fatal(err)
		}
	})
}

// fuzzSize is the size of the fuzzed images: that of the seeds.
const fuzzSize = 128 << 10

// zeroPadded reads as its bytes followed by zeros without end.
type zeroPadded []byte

func (z zeroPadded) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(z)) {
		n = copy(p, z[off:])
	}
	clear(p[n:])
	return len(p), nil
}
