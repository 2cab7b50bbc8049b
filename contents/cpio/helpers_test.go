package cpio

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
)

// newc writes a newc archive member by member, for archives the cpio tool
// cannot make (devices without root, hostile names, overrides).
type newc struct {
	bytes.Buffer
	ino uint32
}

type nm struct {
	name                  string
	mode, uid, gid, mtime uint32
	nlink, ino            uint32 // 0: 1 and a fresh ino
	rdevMajor, rdevMinor  uint32
	data                  string
}

func (w *newc) add(m nm) *newc {
	if m.nlink == 0 {
		m.nlink = 1
	}
	if m.ino == 0 {
		w.ino++
		m.ino = w.ino + 1000
	}
	fmt.Fprintf(w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		m.ino, m.mode, m.uid, m.gid, m.nlink, m.mtime, len(m.data), 0, 0, m.rdevMajor, m.rdevMinor, len(m.name)+1, 0)
	w.WriteString(m.name)
	w.WriteByte(0)
	w.pad()
	w.WriteString(m.data)
	w.pad()
	return w
}

func (w *newc) pad() {
	for w.Len()%4 != 0 {
		w.WriteByte(0)
	}
}

// trailer ends the archive and returns its bytes.
func (w *newc) trailer() []byte {
	w.add(nm{name: "TRAILER!!!", ino: 0xffffffff})
	return w.Bytes()
}

func file(name, data string) nm {
	return nm{name: name, mode: syscall.S_IFREG | 0o644, data: data, mtime: 1000}
}

func dir(name string) nm { return nm{name: name, mode: syscall.S_IFDIR | 0o755, nlink: 2} }

// compressors in Go, for the fuzz seeds and tests that build in memory.
var goCompress = map[string]func(t testing.TB, b []byte) []byte{
	"none": func(_ testing.TB, b []byte) []byte { return b },
	"gzip": func(t testing.TB, b []byte) []byte {
		var o bytes.Buffer
		z := gzip.NewWriter(&o)
		_, _ = z.Write(b)
		must(t, z.Close())
		return o.Bytes()
	},
	"zstd": func(t testing.TB, b []byte) []byte {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		must(t, err)
		return z.EncodeAll(b, nil)
	},
	"xz": func(t testing.TB, b []byte) []byte {
		var o bytes.Buffer
		z, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&o)
		must(t, err)
		_, _ = z.Write(b)
		must(t, z.Close())
		return o.Bytes()
	},
	"lz4": lz4LegacyCompress,
}

// lz4LegacyCompress writes the legacy lz4 frame, as lz4 -l does.
func lz4LegacyCompress(t testing.TB, b []byte) []byte {
	o := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for len(b) > 0 {
		c := b[:min(len(b), lz4LegacyBlock)]
		b = b[len(c):]
		dst := make([]byte, lz4.CompressBlockBound(len(c)))
		n, err := lz4.CompressBlock(c, dst, nil)
		must(t, err)
		o = binary.LittleEndian.AppendUint32(o, uint32(n))
		o = append(o, dst[:n]...)
	}
	return o
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// reset returns the ReadAt calls made of r and the bytes they asked for
// since the last reset, and sets the counts to zero.
func reset(r *nodetest.Image) (int, int64) {
	calls, n := r.Reads(), r.BytesAsked()
	r.Reset()
	return int(calls), n
}

func openBytes(t testing.TB, b []byte, opt node.Options) *FS {
	t.Helper()
	fs, err := Open(context.Background(), nodetest.NewImage(b), int64(len(b)), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return fs.(*FS)
}

func readAll(t testing.TB, fs node.FS, ino node.Ino) []byte {
	t.Helper()
	a, err := fs.Attr(context.Background(), ino)
	must(t, err)
	p := make([]byte, a.Size+10)
	n, err := fs.ReadAt(context.Background(), ino, p, 0)
	if err != io.EOF && !(err == nil && int64(n) == a.Size) {
		t.Fatalf("ReadAt ino %d: n %d err %v", ino, n, err)
	}
	if int64(n) != a.Size {
		t.Fatalf("ReadAt ino %d: %d bytes, size %d", ino, n, a.Size)
	}
	return p[:n]
}
