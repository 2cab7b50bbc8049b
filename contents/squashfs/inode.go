package squashfs

import (
	"context"
	"fmt"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Inode types, basic and extended.
const (
	typeDir = 1 + iota
	typeFile
	typeSymlink
	typeBlock
	typeChar
	typeFifo
	typeSocket
	typeLDir
	typeLFile
	typeLSymlink
	typeLBlock
	typeLChar
	typeLFifo
	typeLSocket
)

// noFragment is the fragment index of a file without a tail fragment.
const noFragment = 0xffffffff

// inode is one parsed inode: its Attr and what reading it needs.
type inode struct {
	ino  node.Ino
	typ  uint16 // the stored type, basic or extended
	attr node.Attr

	// Directories: where the listing starts and its length in bytes.
	dirBlock uint32
	dirOff   uint16
	dirSize  uint32

	// Regular files: see file.go.
	file *fileInode

	// Symlinks.
	target string
}

// inodeRef splits an Ino into the metadata block (relative to the inode
// table) and offset of its inode, checking it can name one.
func inodeRef(ino node.Ino) (block int64, off int, ok bool) {
	if ino == 0 || ino > node.MaxIno {
		return 0, 0, false
	}
	ref := uint64(ino - 1)
	block, off = int64(ref>>16), int(ref&0xffff)
	return block, off, off < metaSize
}

// inoOf is the Ino of the inode reference (block << 16 | offset).
func inoOf(block uint64, off uint16) (node.Ino, bool) {
	if off >= metaSize || block >= 1<<32 {
		return 0, false
	}
	return node.Ino(block<<16|uint64(off)) + 1, true
}

// inode returns the parsed inode ino, from the cache or the inode table.
func (f *fs) inode(ctx context.Context, ino node.Ino) (*inode, error) {
	if in, ok := f.inodes.Get(ino); ok {
		return in, nil
	}
	in, err := f.parseInode(ctx, ino)
	if err != nil {
		return nil, err
	}
	f.inodes.Add(ino, in)
	return in, nil
}

// parseInode reads inode ino from the inode table.
func (f *fs) parseInode(ctx context.Context, ino node.Ino) (*inode, error) {
	block, off, ok := inodeRef(ino)
	lo, hi := int64(f.sb.inodeTable), int64(f.sb.dirTable)
	if !ok || block >= hi-lo {
		return nil, fmt.Errorf("squashfs: inode %d: %w: no such inode reference", ino, node.ErrCorrupt)
	}
	c := f.cursor(lo+block, off, lo, hi)
	var hdr [16]byte
	if err := c.read(ctx, hdr[:]); err != nil {
		return nil, fmt.Errorf("squashfs: inode %d: %w", ino, err)
	}
	typ, perm := le16(hdr[0:]), le16(hdr[2:])
	uid, err := f.id(ctx, le16(hdr[4:]))
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %d uid: %w", ino, err)
	}
	gid, err := f.id(ctx, le16(hdr[6:]))
	if err != nil {
		return nil, fmt.Errorf("squashfs: inode %d gid: %w", ino, err)
	}
	in := &inode{ino: ino, typ: typ, attr: node.Attr{
		Mode:  uint32(perm) & 0o7777,
		Uid:   uid,
		Gid:   gid,
		Mtime: unixTime(le32(hdr[8:])),
	}}
	if err := f.parseBody(ctx, c, typ, in); err != nil {
		return nil, fmt.Errorf("squashfs: inode %d (type %d): %w", ino, typ, err)
	}
	return in, nil
}

// parseBody reads the type-specific part of an inode after its header.
func (f *fs) parseBody(ctx context.Context, c *metaCursor, typ uint16, in *inode) error {
	a := &in.attr
	switch typ {
	case typeDir:
		var b [16]byte
		if err := c.read(ctx, b[:]); err != nil {
			return err
		}
		a.Mode |= syscall.S_IFDIR
		in.dirBlock, a.Nlink = le32(b[0:]), le32(b[4:])
		in.dirSize, in.dirOff = uint32(le16(b[8:])), le16(b[10:])
		a.Size = int64(in.dirSize)
	case typeLDir:
		// The directory index that follows is not needed to list it.
		var b [24]byte
		if err := c.read(ctx, b[:]); err != nil {
			return err
		}
		a.Mode |= syscall.S_IFDIR
		a.Nlink, in.dirSize, in.dirBlock = le32(b[0:]), le32(b[4:]), le32(b[8:])
		in.dirOff = le16(b[18:])
		a.Size = int64(in.dirSize)
	case typeFile, typeLFile:
		a.Mode |= syscall.S_IFREG
		fi, err := f.parseFile(ctx, c, typ == typeLFile, a)
		if err != nil {
			return err
		}
		in.file = fi
	case typeSymlink, typeLSymlink:
		var b [8]byte
		if err := c.read(ctx, b[:]); err != nil {
			return err
		}
		a.Mode |= syscall.S_IFLNK
		a.Nlink = le32(b[0:])
		n := le32(b[4:])
		if int64(n) > int64(f.lim.LinkBytes) {
			return fmt.Errorf("%w: symlink target of %d bytes, over the limit %d", node.ErrCorrupt, n, f.lim.LinkBytes)
		}
		t := make([]byte, n)
		if err := c.read(ctx, t); err != nil {
			return err
		}
		in.target, a.Size = string(t), int64(n)
	case typeBlock, typeChar, typeLBlock, typeLChar:
		var b [8]byte
		if err := c.read(ctx, b[:]); err != nil {
			return err
		}
		a.Mode |= syscall.S_IFCHR
		if typ == typeBlock || typ == typeLBlock {
			a.Mode = a.Mode&^syscall.S_IFMT | syscall.S_IFBLK
		}
		a.Nlink, a.Rdev = le32(b[0:]), rdev(le32(b[4:]))
	case typeFifo, typeSocket, typeLFifo, typeLSocket:
		n, err := c.u32(ctx)
		if err != nil {
			return err
		}
		a.Mode |= syscall.S_IFIFO
		if typ == typeSocket || typ == typeLSocket {
			a.Mode = a.Mode&^syscall.S_IFMT | syscall.S_IFSOCK
		}
		a.Nlink = n
	default:
		return fmt.Errorf("%w: unknown inode type", node.ErrCorrupt)
	}
	return nil
}
