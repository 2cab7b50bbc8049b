package ext4

import (
	"context"
	"encoding/binary"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
)

// rootIno is the inode of the root directory.
const rootIno = 2

// Inode flags this reader looks at.
const (
	flagExtents    = 0x80000
	flagInlineData = 0x10000000
)

// iBlockSize is the size of i_block: block pointers, an extent tree root,
// a fast symlink's target or inline data.
const iBlockSize = 60

// inode is a parsed, checked on-disk inode.
type inode struct {
	ino    uint32
	mode   uint16
	uid    uint32
	gid    uint32
	size   int64
	mtime  time.Time
	nlink  uint16
	flags  uint32
	iblock [iBlockSize]byte
	// inline is the content of an inode with inline data: i_block and
	// then the system.data extended attribute.
	inline []byte
}

func (in *inode) typ() uint32 { return uint32(in.mode) & syscall.S_IFMT }

// attr is what stat shows of in.
func (in *inode) attr() node.Attr {
	a := node.Attr{
		Mode:  uint32(in.mode),
		Uid:   in.uid,
		Gid:   in.gid,
		Size:  in.size,
		Mtime: in.mtime,
		Nlink: uint32(in.nlink),
	}
	switch in.typ() {
	case syscall.S_IFCHR, syscall.S_IFBLK:
		a.Size = 0
		a.Rdev = in.rdev()
	case syscall.S_IFIFO, syscall.S_IFSOCK:
		a.Size = 0
	}
	return a
}

// rdev decodes a device number from i_block: the old 8:8 encoding in the
// first word, or else the new 12:20 one in the second.
func (in *inode) rdev() uint64 {
	le := binary.LittleEndian
	if old := le.Uint32(in.iblock[0:]); old != 0 {
		return unix.Mkdev((old>>8)&0xff, old&0xff)
	}
	dev := le.Uint32(in.iblock[4:])
	return unix.Mkdev((dev&0xfff00)>>8, (dev&0xff)|((dev>>12)&0xfff00))
}

// inode returns inode ino, from the cache or the image.
func (f *fsys) inode(ctx context.Context, ino node.Ino) (*inode, error) {
	if ino == 0 || ino > node.Ino(f.sb.inodesCount) {
		return nil, corruptf("inode %d: outside 1..%d", ino, f.sb.inodesCount)
	}
	n := uint32(ino)
	if in, ok := f.inodes.Get(n); ok {
		return in, nil
	}
	g := uint64(n-1) / uint64(f.sb.inodesPerGroup)
	table, err := f.inodeTable(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", n, err)
	}
	off := int64(table)*f.sb.blockSize + int64(uint64(n-1)%uint64(f.sb.inodesPerGroup))*f.sb.inodeSize
	b := make([]byte, f.sb.inodeSize)
	if err := f.readFull(ctx, b, off, fmt.Sprintf("inode %d at %d", n, off)); err != nil {
		return nil, err
	}
	in, err := f.parseInode(n, b)
	if err != nil {
		return nil, err
	}
	f.inodes.Add(n, in)
	return in, nil
}

// parseInode checks and decodes the on-disk inode n.
func (f *fsys) parseInode(n uint32, b []byte) (*inode, error) {
	le := binary.LittleEndian
	in := &inode{
		ino:   n,
		mode:  le.Uint16(b[0x0:]),
		uid:   uint32(le.Uint16(b[0x2:])) | uint32(le.Uint16(b[0x78:]))<<16,
		gid:   uint32(le.Uint16(b[0x18:])) | uint32(le.Uint16(b[0x7A:]))<<16,
		nlink: le.Uint16(b[0x1A:]),
		flags: le.Uint32(b[0x20:]),
	}
	copy(in.iblock[:], b[0x28:0x28+iBlockSize])
	switch in.typ() {
	case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFIFO, syscall.S_IFSOCK:
	default:
		return nil, corruptf("inode %d: mode %#o is no file type (unused inode?)", n, in.mode)
	}
	size := uint64(le.Uint32(b[0x4:])) | uint64(le.Uint32(b[0x6C:]))<<32
	if size > 1<<62 {
		return nil, corruptf("inode %d: size %d", n, size)
	}
	in.size = int64(size)
	sec, nsec := int64(int32(le.Uint32(b[0x10:]))), int64(0)
	var extra []byte
	if len(b) > 128 {
		isize := int(le.Uint16(b[0x80:]))
		if 128+isize > len(b) || isize%4 != 0 {
			return nil, corruptf("inode %d: extra size %d in an inode of %d bytes", n, isize, len(b))
		}
		if isize >= 0x8C-128 {
			x := le.Uint32(b[0x88:])
			sec += int64(x&3) << 32
			nsec = int64(x >> 2)
			if nsec >= 1e9 {
				nsec = 0
			}
		}
		extra = b[128+isize:]
	}
	in.mtime = time.Unix(sec, nsec)
	if in.flags&flagInlineData != 0 {
		if err := f.parseInline(in, extra); err != nil {
			return nil, err
		}
	}
	return in, nil
}
