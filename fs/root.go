package fs

import (
	"context"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/image"
)

// BlobReader reads a layer's bytes; lazy.Blob is one.
type BlobReader interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// OpenBlob returns the reader for blob d of size bytes.
type OpenBlob func(d digest.Digest, size int64) BlobReader

// Options configure a Root. The zero value is silent with no read-ahead.
type Options struct {
	// Logger gets a line for failed reads (at most one per blob every
	// 10 s, with a count of those not logged); nil is silent.
	Logger *slog.Logger
	// ReadAhead is the largest window fetched ahead of a sequential reader
	// of one open file; 0 disables read-ahead.
	ReadAhead int64
	// Owner owns every file and directory; nil is the daemon's effective
	// user and group, so that a mount belongs to the user who mounted it.
	Owner *fuse.Owner
	// Observer, if set, is told the bytes served and the reads that failed
	// (for metrics); nil is silent.
	Observer Observer
	// Status, if set, is the value of the root's user.osimagefs.status
	// attribute, made when asked.
	Status func() []byte
	// Passthrough, if set, gives the cache files the kernel may read
	// complete, verified layers from itself (passthrough.go); nil: every
	// read goes through the daemon.
	Passthrough Backing
	// Contents shows next to each disk, squashfs, ISO and initramfs layer
	// a directory <file>.contents with what is inside it (contents.go).
	Contents bool
	// Blocks keeps the blocks of those that are decompressed once read;
	// nil decompresses on every read.
	Blocks *blockcache.Cache
}

// Root is the root directory of a mounted image.
type Root struct {
	gofs.Inode
	tree  *image.Tree
	open  OpenBlob
	opts  Options
	log   *slog.Logger
	owner fuse.Owner
	mtime time.Time

	failLog *failLog
	now     func() time.Time // the failure log's clock
	pt      passthrough

	byDigest map[digest.Digest][]*fileNode // layer files, written by OnAdd only

	contentsIno atomic.Uint64 // the last inode number given to an object inside a layer
}

// contentsInoBase is above the inode numbers go-fuse gives the tree's own
// nodes (from 2^63 up, automatic) and below none of them: objects inside
// layers are numbered from 2^62 up.
const contentsInoBase = 1 << 62

var (
	_ gofs.NodeOnAdder   = (*Root)(nil)
	_ gofs.NodeGetattrer = (*Root)(nil)
	_ gofs.NodeStatfser  = (*Root)(nil)

	_ gofs.NodeGetxattrer  = (*Root)(nil)
	_ gofs.NodeListxattrer = (*Root)(nil)
)

// NewRoot makes the root of a tree whose layers are read through open.
func NewRoot(tree *image.Tree, open OpenBlob, opts Options) *Root {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	owner := fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	if opts.Owner != nil {
		owner = *opts.Owner
	}
	if opts.Observer == nil {
		opts.Observer = silent{}
	}
	r := &Root{tree: tree, open: open, opts: opts, log: log, owner: owner, mtime: time.Now(),
		failLog: newFailLog(failLogInterval), now: time.Now, pt: newPassthrough(opts.Passthrough, log)}
	r.contentsIno.Store(contentsInoBase)
	return r
}

// OnAdd builds the whole tree once, with persistent inodes.
func (r *Root) OnAdd(ctx context.Context) {
	dirs := map[string]*gofs.Inode{"": &r.Inode}
	r.byDigest = map[digest.Digest][]*fileNode{}
	var mkdir func(p string) *gofs.Inode
	mkdir = func(p string) *gofs.Inode {
		if in, ok := dirs[p]; ok {
			return in
		}
		parent := mkdir(parentDir(p))
		in := parent.NewPersistentInode(ctx, &dirNode{root: r}, gofs.StableAttr{Mode: syscall.S_IFDIR})
		parent.AddChild(path.Base(p), in, false)
		dirs[p] = in
		return in
	}
	for _, f := range r.tree.Files {
		node := &fileNode{root: r, file: f}
		if f.Lazy() {
			node.blob = r.open(f.Digest, f.Size)
			r.byDigest[f.Digest] = append(r.byDigest[f.Digest], node)
		}
		parent := mkdir(parentDir(f.Path))
		parent.AddChild(path.Base(f.Path), parent.NewPersistentInode(ctx, node, gofs.StableAttr{Mode: syscall.S_IFREG}), false)
	}
	if !r.opts.Contents {
		return
	}
	// After every file, so that a .contents directory never hides one.
	for _, f := range r.tree.Files {
		if !f.Lazy() || !Browsable(f.Role) {
			continue
		}
		parent, name := dirs[parentDir(f.Path)], path.Base(f.Path)+ContentsSuffix
		if parent.GetChild(name) != nil {
			continue
		}
		c := &layerContents{root: r, file: f, blob: parent.GetChild(path.Base(f.Path)).Operations().(*fileNode).blob}
		parent.AddChild(name, parent.NewPersistentInode(ctx, &contentsNode{c: c, top: true}, gofs.StableAttr{Mode: syscall.S_IFDIR}), false)
	}
}

// Getattr describes the root directory.
func (r *Root) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.dirAttr(&out.Attr)
	return 0
}

// Statfs reports the tree's total size, so df shows something true.
func (r *Root) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const bsize = 4096
	var total uint64
	for _, f := range r.tree.Files {
		total += uint64(f.Size+bsize-1) / bsize
	}
	out.Bsize, out.Frsize, out.Blocks = bsize, bsize, total
	out.Files = uint64(len(r.tree.Files))
	out.NameLen = 255
	return 0
}

// dirAttr describes a directory (the root or one below it).
func (r *Root) dirAttr(a *fuse.Attr) {
	a.Mode = syscall.S_IFDIR | 0o555
	a.Nlink = 2
	r.commonAttr(a)
}

// commonAttr sets what every node shares: owner and times.
func (r *Root) commonAttr(a *fuse.Attr) {
	a.Owner = r.owner
	a.SetTimes(nil, &r.mtime, &r.mtime)
}

// parentDir is path.Dir with "" for the top.
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}
