package squashfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// openWalk opens data as an image of size bytes and walks all of it.
func openWalk(ctx context.Context, data []byte, size int64) error {
	f, err := Open(ctx, nodetest.NewImage(data), size, node.Options{Blocks: blockcache.New(8 << 20), Limits: fuzzLimits})
	if err != nil {
		return err
	}
	_, err = walk(ctx, f, 3000, 5000, 4<<20)
	return err
}

// TestCoverage checks that the fixture has what the other tests claim to
// test: extended inodes, holes, fragments, several directory headers.
func TestCoverage(t *testing.T) {
	img := buildImage(t, 128<<10, "-comp", "xz", "-Xbcj", "x86")
	ctx := fixture.Context(t, time.Minute)
	fo, err := Open(ctx, nodetest.NewImage(img.data), int64(len(img.data)), node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := fo.(*fs)
	if f.sb.flags&flagCompressorOptions == 0 {
		t.Error("xz with BCJ: no compressor options in the superblock")
	}
	got, err := walk(ctx, f, 1<<20, 1<<20, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	types := map[uint16]int{}
	holes, frags := 0, 0
	for _, w := range got {
		in, err := f.inode(ctx, w.ino)
		if err != nil {
			t.Fatal(err)
		}
		types[in.typ]++
		if fi := in.file; fi != nil {
			if fi.frag != noFragment {
				frags++
			}
			for b := range fi.nblocks {
				if e, _, err := f.entry(ctx, fi, b); err == nil && e == 0 {
					holes++
				}
			}
		}
	}
	t.Logf("inode types %v, %d holes, %d files with fragments", types, holes, frags)
	for _, typ := range []uint16{typeDir, typeLDir, typeFile, typeLFile, typeSymlink, typeChar, typeBlock, typeFifo, typeSocket} {
		if types[typ] == 0 {
			t.Errorf("no inode of type %d", typ)
		}
	}
	if holes < 3 || frags < 3 {
		t.Errorf("%d holes, %d fragment tails", holes, frags)
	}
}

func TestCorrupt(t *testing.T) {
	fixture.RequireTools(t, "mksquashfs")
	good := tinyImage(t, "-comp", "gzip")
	ctx := fixture.Context(t, time.Minute)
	if err := openWalk(ctx, good, int64(len(good))); err != nil {
		t.Fatalf("the good image: %v", err)
	}
	sb, err := parseSuperblock(good, int64(len(good)), node.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := []struct {
		name string
		data []byte
		size int64
	}{
		{"empty", nil, 0},
		{"short superblock", good[:50], 50},
		{"superblock only", good[:96], 96},
		{"cut before the end", good[:sb.bytesUsed-1], int64(sb.bytesUsed - 1)},
		{"reader shorter than size", good[:sb.bytesUsed/2], int64(len(good))},
		{"reader ends in the tables", good[:sb.dirTable+5], int64(len(good))},
		{"bad magic", edit(func(b []byte) { b[0] = 'x' }), int64(len(good))},
		{"version 3.1", edit(func(b []byte) { le.PutUint16(b[28:], 3); le.PutUint16(b[30:], 1) }), int64(len(good))},
		{"block size not a power of two", edit(func(b []byte) { le.PutUint32(b[12:], 5000) }), int64(len(good))},
		{"block log mismatch", edit(func(b []byte) { le.PutUint16(b[22:], 13) }), int64(len(good))},
		{"block size 2 MiB", edit(func(b []byte) { le.PutUint32(b[12:], 2<<20); le.PutUint16(b[22:], 21) }), int64(len(good))},
		{"lzma", edit(func(b []byte) { le.PutUint16(b[20:], compLZMA) }), int64(len(good))},
		{"unknown compression", edit(func(b []byte) { le.PutUint16(b[20:], 9) }), int64(len(good))},
		{"bytes used past the end", edit(func(b []byte) { le.PutUint64(b[40:], uint64(len(good))+1) }), int64(len(good))},
		{"root offset 9000", edit(func(b []byte) { le.PutUint64(b[32:], 9000) }), int64(len(good))},
		{"root in no block", edit(func(b []byte) { le.PutUint64(b[32:], 1<<40) }), int64(len(good))},
		{"inode table after directory table", edit(func(b []byte) { le.PutUint64(b[64:], sb.dirTable+1) }), int64(len(good))},
		{"id table outside", edit(func(b []byte) { le.PutUint64(b[48:], 10) }), int64(len(good))},
		{"no ids", edit(func(b []byte) { le.PutUint16(b[26:], 0) }), int64(len(good))},
		{"many ids", edit(func(b []byte) { le.PutUint16(b[26:], 65535) }), int64(len(good))},
		{"many fragments", edit(func(b []byte) { le.PutUint32(b[16:], 1<<31) }), int64(len(good))},
	}
	// A byte flipped in each table region, at a few places.
	regions := []struct {
		name   string
		lo, hi uint64
	}{
		{"data", superblockSize, sb.inodeTable},
		{"inode table", sb.inodeTable, sb.dirTable},
		{"directory table", sb.dirTable, sb.dirTableEnd()},
		{"fragment index", sb.fragTable, sb.fragTable + 8},
		{"id table", sb.idTable, sb.idTable + 8},
		{"after the directory table", sb.dirTableEnd(), sb.bytesUsed},
	}
	detect := map[string]bool{}
	for _, rg := range regions {
		for _, at := range []uint64{rg.lo, rg.lo + 1, rg.lo + 5, (rg.lo + rg.hi) / 2, rg.hi - 1} {
			if at >= rg.hi {
				continue
			}
			name := fmt.Sprintf("flip %s at %d", rg.name, at)
			cases = append(cases, struct {
				name string
				data []byte
				size int64
			}{name, edit(func(b []byte) { b[at] ^= 0x5a }), int64(len(good))})
			// Compressed metadata is checksummed (zlib adler32): a flip in
			// it, past the block's 2-byte header, must be found.
			if rg.name == "inode table" || rg.name == "directory table" {
				h := uint64(le.Uint16(good[rg.lo:]))
				if h&metaUncompressed == 0 && at >= rg.lo+5 && at < rg.lo+2+h {
					detect[name] = true
				}
			}
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := openWalk(ctx, c.data, c.size)
			if err != nil && !errors.Is(err, node.ErrCorrupt) {
				t.Errorf("error does not wrap ErrCorrupt: %v", err)
			}
			if err == nil && (detect[c.name] || !startsWith(c.name, "flip")) {
				t.Errorf("no error")
			}
			t.Log(err)
		})
	}
}

func startsWith(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// TestReaderErrorsPassOn checks that an error of the ReaderAt is passed
// on, not turned into ErrCorrupt.
func TestReaderErrorsPassOn(t *testing.T) {
	fixture.RequireTools(t, "mksquashfs")
	good := tinyImage(t, "-comp", "zstd")
	ctx := fixture.Context(t, time.Minute)
	eio := errors.New("network EIO")
	f, err := Open(ctx, nodetest.NewImage(good), int64(len(good)), node.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ino := nodetest.Lookup(t, f, "d/e/big")
	f.(*fs).r = failReader{eio}
	_, err = f.ReadAt(ctx, ino, make([]byte, 10), 0)
	if !errors.Is(err, eio) || errors.Is(err, node.ErrCorrupt) {
		t.Errorf("ReadAt with a failing reader: %v", err)
	}
	if _, err := Open(ctx, failReader{eio}, 1<<20, node.Options{}); !errors.Is(err, eio) {
		t.Errorf("Open with a failing reader: %v", err)
	}
}

type failReader struct{ err error }

func (r failReader) ReadAt(context.Context, []byte, int64) (int, error) { return 0, r.err }
