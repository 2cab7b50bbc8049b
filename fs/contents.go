package fs

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/osimagefs/osimagefs/contents"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/image"
)

// ContentsSuffix names the directory next to a layer file that shows what
// is inside it.
const ContentsSuffix = ".contents"

// Browsable reports whether a layer of this role gets a .contents directory.
func Browsable(r image.Role) bool {
	switch r {
	case image.RoleSquashfs, image.RoleISO, image.RoleDisk, image.RoleInitramfs:
		return true
	}
	return false
}

// layerContents is what one .contents directory shows: the layer's Tree,
// opened when the directory is first listed or looked in, never on stat.
type layerContents struct {
	root *Root
	file image.File
	blob BlobReader

	mu   sync.Mutex
	tree *contents.Tree // nil until opened

	inos sync.Map // node.Ino -> the mount's inode number
}

// open returns the layer's Tree, opening it on first use; a failed fetch
// is tried again on the next call.
func (c *layerContents) open(ctx context.Context) (*contents.Tree, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tree != nil {
		return c.tree, nil
	}
	t, err := contents.Open(ctx, c.blob, c.file.Size, c.file.Path, node.Options{
		Log: c.root.log, Blocks: c.root.opts.Blocks,
	})
	if err != nil {
		return nil, err
	}
	c.tree = t
	return t, nil
}

// ino is the mount's inode number for ino: one per object, so hard links
// are one inode, taken from the mount's counter.
func (c *layerContents) ino(ino node.Ino) uint64 {
	if v, ok := c.inos.Load(ino); ok {
		return v.(uint64)
	}
	v, _ := c.inos.LoadOrStore(ino, c.root.contentsIno.Add(1))
	return v.(uint64)
}

// contentsNode is one object inside a layer: the .contents directory
// itself (top, whose attributes are the mount's so that stat fetches
// nothing) or anything below it, with its stored attributes.
type contentsNode struct {
	gofs.Inode
	c    *layerContents
	top  bool
	ino  node.Ino // below the top
	attr node.Attr

	mu     sync.Mutex
	list   []contents.Entry // a directory's entries, once listed
	index  map[string]int   // name -> its place in list
	listed bool
}

var (
	_ gofs.NodeGetattrer  = (*contentsNode)(nil)
	_ gofs.NodeLookuper   = (*contentsNode)(nil)
	_ gofs.NodeReaddirer  = (*contentsNode)(nil)
	_ gofs.NodeReadlinker = (*contentsNode)(nil)
	_ gofs.NodeOpener     = (*contentsNode)(nil)
	_ gofs.NodeReader     = (*contentsNode)(nil)
)

func (n *contentsNode) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.top {
		n.c.root.dirAttr(&out.Attr)
		return 0
	}
	contentsAttr(n.attr, n.c.ino(n.ino), &out.Attr)
	return 0
}

// entries lists the directory once; the listing never changes.
func (n *contentsNode) entries(ctx context.Context) ([]contents.Entry, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listed {
		return n.list, 0
	}
	t, err := n.c.open(ctx)
	if err != nil {
		return nil, n.c.root.contentsErrno(ctx, "open contents", n.c.file, err)
	}
	dir := n.ino
	if n.top {
		dir = t.Root()
	}
	list, err := t.List(ctx, dir)
	if err != nil {
		return nil, n.c.root.contentsErrno(ctx, "list", n.c.file, err)
	}
	n.index = make(map[string]int, len(list))
	for i, e := range list {
		n.index[e.Name] = i
	}
	n.list, n.listed = list, true
	return list, 0
}

func (n *contentsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if !n.top && n.attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, syscall.ENOTDIR
	}
	list, errno := n.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	i, ok := n.index[name] // written once, before entries returns
	if !ok {
		return nil, syscall.ENOENT
	}
	e := list[i]
	ino := n.c.ino(e.Ino)
	contentsAttr(e.Attr, ino, &out.Attr)
	child := &contentsNode{c: n.c, ino: e.Ino, attr: e.Attr}
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: e.Attr.Mode & syscall.S_IFMT, Ino: ino}), 0
}

func (n *contentsNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if !n.top && n.attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, syscall.ENOTDIR
	}
	list, errno := n.entries(ctx)
	if errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, len(list))
	for i, e := range list {
		out[i] = fuse.DirEntry{Name: e.Name, Mode: e.Attr.Mode & syscall.S_IFMT, Ino: n.c.ino(e.Ino)}
	}
	return gofs.NewListDirStream(out), 0
}

func (n *contentsNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.top || n.attr.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	t, err := n.c.open(ctx)
	if err != nil {
		return nil, n.c.root.contentsErrno(ctx, "open contents", n.c.file, err)
	}
	s, err := t.Readlink(ctx, n.ino)
	if err != nil {
		return nil, n.c.root.contentsErrno(ctx, "readlink", n.c.file, err)
	}
	return []byte(s), 0
}

// Open lets regular files be read. Device nodes never open as devices:
// the mount is nodev, so the kernel refuses them before asking.
func (n *contentsNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.top || n.attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, 0, syscall.EACCES
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *contentsNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	t, err := n.c.open(ctx)
	if err != nil {
		return nil, n.c.root.contentsErrno(ctx, "open contents", n.c.file, err)
	}
	if off >= n.attr.Size {
		return fuse.ReadResultData(nil), 0
	}
	dest = dest[:min(int64(len(dest)), n.attr.Size-off)]
	k, err := t.ReadAt(ctx, n.ino, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, n.c.root.contentsErrno(ctx, "read", n.c.file, err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// contentsAttr is what stat shows of an object inside a layer.
func contentsAttr(a node.Attr, ino uint64, out *fuse.Attr) {
	out.Ino = ino
	out.Mode = a.Mode
	out.Owner = fuse.Owner{Uid: a.Uid, Gid: a.Gid}
	out.Size = uint64(max(a.Size, 0))
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 4096
	out.Nlink = max(a.Nlink, 1)
	out.Rdev = kernelDev(a.Rdev)
	out.SetTimes(&a.Mtime, &a.Mtime, &a.Mtime)
}

// kernelDev encodes a device number as FUSE carries it: the kernel's
// new_encode_dev, from the major and minor of a unix.Mkdev value.
func kernelDev(dev uint64) uint32 {
	major := uint32((dev>>8)&0xfff | (dev>>32)&^0xfff)
	minor := uint32(dev&0xff | (dev>>12)&^0xff)
	return minor&0xff | major<<8 | (minor&^0xff)<<12
}
