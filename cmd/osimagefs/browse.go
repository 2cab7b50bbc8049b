package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/osimagefs/osimagefs/cache"
	"github.com/osimagefs/osimagefs/contents"
	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/source"
)

// browseFlags are the flags of ls, cat and cp: mount's, with mount's
// defaults, for what they share (the registry, the caches, verification).
type browseFlags struct {
	remote        remoteFlags
	chunkSize     sizeFlag
	memoryCache   sizeFlag
	parallel      int
	readTimeout   time.Duration
	cacheDir      string
	cacheSize     sizeFlag
	verify        string
	contentsCache sizeFlag
}

func newBrowseFlags() *browseFlags {
	return &browseFlags{chunkSize: lazy.DefaultChunkSize, cacheSize: 10 << 30, contentsCache: blockcache.DefaultBytes}
}

func (f *browseFlags) register(fl *pflag.FlagSet) {
	f.remote.register(fl)
	fl.Var(&f.chunkSize, "chunk-size", "unit of fetching and caching, 4KiB to 64MiB (that of the mounts sharing the cache)")
	fl.Var(&f.memoryCache, "memory-cache", "memory for chunks (default 64MiB with a disk cache, 256MiB with --cache-dir=none)")
	fl.IntVar(&f.parallel, "parallel", lazy.DefaultParallel, "most range requests in flight to the registry")
	fl.DurationVar(&f.readTimeout, "read-timeout", 60*time.Second, "a read that cannot be served in this time fails")
	fl.StringVar(&f.cacheDir, "cache-dir", "", cacheDirHelp)
	fl.Var(&f.cacheSize, "cache-size", "most bytes the disk cache holds (least recently used goes first)")
	registerVerify(fl, &f.verify)
	fl.Var(&f.contentsCache, "contents-cache", contentsCacheHelp)
}

// contentsCacheHelp is the help of --contents-cache.
const contentsCacheHelp = "memory for blocks decompressed inside layers (squashfs, initramfs), so each is decompressed once"

// browsePathHelp says how ls, cat and cp name files.
const browsePathHelp = `PATH is written as in the mount: amd64/virtualization/disk.img, or inside
a layer through its .contents directory:
amd64/virtualization/root.squashfs.contents/etc/os-release. A disk shows
its partitions as p1, p2, ... (disk.img.contents/p2/etc/fstab); an
initramfs its cpio archive; an ISO its Rock Ridge (or Joliet) names.
Nothing is mounted: no FUSE, no root, no loop device. Only the metadata of
what is listed and the blocks of what is read are fetched, into the same
disk cache a mount uses (--cache-dir).

` + referenceHelp

// browser is an image opened for ls, cat and cp.
type browser struct {
	tree    *image.Tree
	fetcher *lazy.Fetcher
	blocks  *blockcache.Cache
	log     *slog.Logger
	timeout time.Duration
	trees   map[string]*contents.Tree // by layer path, once opened
	close   func()
}

// openBrowser resolves ref and sets up the caches as a mount would. Its
// output is the command's, so the log says only what went wrong
// (warnings and errors) unless --log-level asks for more.
func openBrowser(cmd *cobra.Command, g *globalFlags, f *browseFlags, refArg string) (*browser, error) {
	ctx := cmd.Context()
	if !cmd.Flags().Changed("log-level") {
		g.logLevel = "warn"
	}
	log, err := g.logger()
	if err != nil {
		return nil, err
	}
	platforms, err := f.remote.parsePlatforms()
	if err != nil {
		return nil, err
	}
	if f.parallel < 1 {
		return nil, usageError{fmt.Errorf("--parallel %d: must be at least 1", f.parallel)}
	}
	if f.readTimeout <= 0 {
		return nil, usageError{fmt.Errorf("--read-timeout %s: must be positive", f.readTimeout)}
	}
	verify, err := parseVerify(f.verify)
	if err != nil {
		return nil, err
	}
	ref, err := source.Parse(refArg)
	if err != nil {
		return nil, err
	}
	disk, err := openDiskCache(cacheDirFor(f.cacheDir, ref), int64(f.chunkSize), int64(f.cacheSize), log)
	if err != nil {
		return nil, err
	}
	// release closes what is open so far: the source, then the disk cache.
	release := func() {
		if disk != nil {
			disk.Close()
		}
	}
	fail := func(err error) (*browser, error) { release(); return nil, err }

	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts, err := f.remote.storeOptions(log)
	if err != nil {
		return fail(err)
	}
	src, err := openSource(rctx, ref, opts, log)
	if err != nil {
		return fail(err)
	}
	release = func() {
		src.Close()
		if disk != nil {
			disk.Close()
		}
	}
	info := src.Info()
	tree, err := src.Resolve(rctx, platforms)
	if err != nil {
		return fail(err)
	}
	for _, w := range tree.Warnings {
		log.Warn(w)
	}
	verifier, err := newVerifier(rctx, verify, int64(f.chunkSize), src, tree, log)
	if err != nil {
		return fail(err)
	}
	mem, _, err := memoryFor(int64(f.memoryCache), disk != nil, f.parallel, int64(f.chunkSize), log)
	if err != nil {
		return fail(err)
	}
	lopts := lazy.Options{
		ChunkSize:    int64(f.chunkSize),
		MaxRequest:   lazy.DefaultMaxRequest,
		Parallel:     f.parallel,
		FetchTimeout: f.readTimeout,
		Logger:       log,
		Integrity:    verifier,
		Host:         info.Name,
		CheckFirst:   info.Local,
	}
	if disk != nil {
		lopts.Disk = disk
	}
	fetcher, err := lazy.NewFetcher(src, mem, lopts)
	if err != nil {
		return fail(usageError{err})
	}
	return &browser{tree: tree, fetcher: fetcher, blocks: blockcache.New(int64(f.contentsCache)), log: log,
		timeout: f.readTimeout, trees: map[string]*contents.Tree{},
		close: func() { fetcher.Close(); release() }}, nil
}

// openTarget opens ref as openBrowser does and resolves p in it; the
// caller closes the browser.
func openTarget(cmd *cobra.Command, g *globalFlags, f *browseFlags, ref, p string, follow bool) (*browser, target, error) {
	b, err := openBrowser(cmd, g, f, ref)
	if err != nil {
		return nil, target{}, err
	}
	t, err := b.resolve(cmd.Context(), p, follow)
	if err != nil {
		b.close()
		return nil, target{}, err
	}
	return b, t, nil
}

// memoryFor makes the chunk LRU of a command that reads layers and
// returns it with its size. --memory-cache (0: the default for a mount
// with or without a disk cache) bounds all chunk memory: the LRU gets what
// the requests in flight (at most parallel of lazy.DefaultMaxRequest
// bytes) leave, and the Go runtime is told to collect garbage before the
// process grows much beyond it (unless GOMEMLIMIT says otherwise).
func memoryFor(memoryCache int64, withDisk bool, parallel int, chunk int64, log *slog.Logger) (*cache.Memory, int64, error) {
	if memoryCache == 0 {
		memoryCache = memoryWithoutDisk
		if withDisk {
			memoryCache = memoryWithDisk
		}
	}
	inflight := int64(parallel) * max(chunk, lazy.DefaultMaxRequest)
	if limit, ok := memoryLimit(os.Getenv("GOMEMLIMIT"), memoryCache); ok {
		debug.SetMemoryLimit(limit)
	} else {
		log.Debug("memory limit left to GOMEMLIMIT", "GOMEMLIMIT", os.Getenv("GOMEMLIMIT"))
	}
	lru := max(chunk, memoryCache-inflight)
	mem, err := cache.NewMemory(lru, chunk)
	if err != nil {
		return nil, 0, usageError{err}
	}
	return mem, lru, nil
}

// reader returns what reads file f: its blob, or the document in memory.
func (b *browser) reader(f image.File) node.ReaderAt {
	if !f.Lazy() {
		return bytesReader{bytes.NewReader(f.Data)}
	}
	return timeoutReader{b.fetcher.Blob(f.Digest, f.Size), b.timeout}
}

// bytesReader reads a document held in memory.
type bytesReader struct{ r *bytes.Reader }

func (r bytesReader) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	return r.r.ReadAt(p, off)
}

// contentsOf opens the contents of layer f once.
func (b *browser) contentsOf(ctx context.Context, f image.File) (*contents.Tree, error) {
	if t := b.trees[f.Path]; t != nil {
		return t, nil
	}
	t, err := contents.Open(ctx, b.reader(f), f.Size, f.Path, node.Options{Log: b.log, Blocks: b.blocks})
	if err != nil {
		return nil, err
	}
	b.trees[f.Path] = t
	return t, nil
}

// target is what a PATH names: a directory of the mount's tree, a file of
// it, or an object inside a layer.
type target struct {
	path  string      // as given, cleaned
	dir   bool        // a directory of the mount's tree (or its top)
	file  *image.File // a file of the tree
	layer *image.File // the layer whose .contents directory this is, not opened yet
	tree  *contents.Tree
	entry contents.Entry // inside tree
}

// isDir reports whether the target lists as a directory.
func (t target) isDir() bool {
	return t.dir || t.layer != nil || (t.tree != nil && t.entry.Attr.Mode&syscall.S_IFMT == syscall.S_IFDIR)
}

// inside returns t with a .contents directory opened: its root.
func (b *browser) inside(ctx context.Context, t target) (target, error) {
	if t.layer == nil {
		return t, nil
	}
	tr, err := b.contentsOf(ctx, *t.layer)
	if err != nil {
		return target{}, err
	}
	e, err := walkInside(ctx, tr, nil, false)
	if err != nil {
		return target{}, fmt.Errorf("PATH %q: %w", t.path, err)
	}
	return target{path: t.path, tree: tr, entry: e}, nil
}

// list returns the entries of directory t: of the mount's tree, opening
// nothing, or inside a layer, opening its .contents directory if need be.
func (b *browser) list(ctx context.Context, t target) (target, []target, error) {
	t, err := b.inside(ctx, t)
	if err != nil {
		return target{}, nil, err
	}
	if t.tree == nil {
		return t, b.children(t), nil
	}
	ents, err := t.tree.List(ctx, t.entry.Ino)
	if err != nil {
		return target{}, nil, fmt.Errorf("list %s: %w", t.path, err)
	}
	out := make([]target, len(ents))
	for i, e := range ents {
		out[i] = target{path: path.Join(t.path, e.Name), tree: t.tree, entry: e}
	}
	return t, out, nil
}

// children lists directory t of the mount's tree, opening nothing.
func (b *browser) children(t target) []target {
	var out []target
	for _, name := range b.names(t.path) {
		p := path.Join(t.path, name)
		switch f := b.file(p); {
		case f != nil:
			out = append(out, target{path: p, file: f})
		case strings.HasSuffix(name, osfs.ContentsSuffix) && b.file(strings.TrimSuffix(p, osfs.ContentsSuffix)) != nil:
			out = append(out, target{path: p, layer: b.file(strings.TrimSuffix(p, osfs.ContentsSuffix))})
		default:
			out = append(out, target{path: p, dir: true})
		}
	}
	return out
}

// cleanPath is PATH relative to the top of the tree, "" for the top.
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// resolve finds what p names. Inside a layer, symlinks on the way are
// followed within that layer (an absolute target starts at its root); the
// last one too when follow is set.
func (b *browser) resolve(ctx context.Context, p string, follow bool) (target, error) {
	// Inside a layer ".." is resolved as the kernel would, after symlinks
	// (walkInside); only the part before a .contents directory is cleaned
	// as text. p itself is shown cleaned.
	raw := strings.Split(strings.Trim(p, "/"), "/")
	p = cleanPath(p)
	var comps []string // of the mount's tree, walked so far
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(comps) > 0 {
				comps = comps[:len(comps)-1]
			}
			continue
		}
		cur := path.Join(comps...)
		next := path.Join(cur, c)
		last := !slices.ContainsFunc(raw[i+1:], func(s string) bool { return s != "" && s != "." && s != ".." })
		if f := b.file(next); f != nil {
			if !last {
				return target{}, usageError{fmt.Errorf("PATH %q: %s is a file, not a directory", p, next)}
			}
			comps = append(comps, c)
			continue
		}
		if f := b.file(strings.TrimSuffix(next, osfs.ContentsSuffix)); f != nil && strings.HasSuffix(c, osfs.ContentsSuffix) && browsableFile(*f) {
			t, err := b.contentsOf(ctx, *f)
			if err != nil {
				return target{}, err
			}
			e, err := walkInside(ctx, t, raw[i+1:], follow)
			if err != nil {
				return target{}, fmt.Errorf("PATH %q: %w", p, err)
			}
			return target{path: p, tree: t, entry: e}, nil
		}
		if !b.isTreeDir(next) {
			return target{}, usageError{fmt.Errorf("PATH %q is not in the image; %s holds: %s", p, orTop(cur), strings.Join(b.names(cur), ", "))}
		}
		comps = append(comps, c)
	}
	at := path.Join(comps...)
	if f := b.file(at); f != nil {
		return target{path: at, file: f}, nil
	}
	return target{path: at, dir: true}, nil
}

func orTop(dir string) string {
	if dir == "" {
		return "the top"
	}
	return dir
}

// file returns the tree's file at p, or nil.
func (b *browser) file(p string) *image.File {
	for i := range b.tree.Files {
		if b.tree.Files[i].Path == p {
			return &b.tree.Files[i]
		}
	}
	return nil
}

// isTreeDir reports whether p is a directory of the mount's tree.
func (b *browser) isTreeDir(p string) bool {
	for _, f := range b.tree.Files {
		if strings.HasPrefix(f.Path, p+"/") {
			return true
		}
	}
	return false
}

// browsableFile reports whether a file of the tree has a .contents
// directory, as the mount shows it.
func browsableFile(f image.File) bool {
	return f.Lazy() && osfs.Browsable(f.Role)
}

// names lists directory dir of the mount's tree as the mount does: its
// files and directories, and a .contents directory next to each layer
// that has one.
func (b *browser) names(dir string) []string {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	prefix := dir + "/"
	if dir == "" {
		prefix = ""
	}
	for _, f := range b.tree.Files {
		rest, ok := strings.CutPrefix(f.Path, prefix)
		if !ok {
			continue
		}
		name, _, sub := strings.Cut(rest, "/")
		add(name)
		if !sub && browsableFile(f) {
			add(name + osfs.ContentsSuffix)
		}
	}
	slices.Sort(out)
	return out
}

// maxHops bounds the symlinks followed in one path, as the kernel does.
const maxHops = 40

// walkInside follows comps from the root of t.
func walkInside(ctx context.Context, t *contents.Tree, comps []string, follow bool) (contents.Entry, error) {
	a, err := t.Attr(ctx, t.Root())
	if err != nil {
		return contents.Entry{}, err
	}
	root := contents.Entry{Name: "", Ino: t.Root(), Attr: a}
	stack := []contents.Entry{root} // the directories walked, root first
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		dir := stack[len(stack)-1]
		if dir.Attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return contents.Entry{}, fmt.Errorf("%s is not a directory", dir.Name)
		}
		e, err := t.Lookup(ctx, dir.Ino, c)
		if err != nil {
			return contents.Entry{}, err
		}
		if e.Attr.Mode&syscall.S_IFMT == syscall.S_IFLNK && (len(comps) > 0 || follow) {
			if hops++; hops > maxHops {
				return contents.Entry{}, fmt.Errorf("more than %d symlinks: %w", maxHops, syscall.ELOOP)
			}
			dest, err := t.Readlink(ctx, e.Ino)
			if err != nil {
				return contents.Entry{}, err
			}
			if strings.HasPrefix(dest, "/") {
				stack = stack[:1]
			}
			comps = append(strings.Split(dest, "/"), comps...)
			continue
		}
		stack = append(stack, e)
	}
	return stack[len(stack)-1], nil
}

// readAll copies the bytes of what t names, a file, to w.
func (b *browser) copyTo(ctx context.Context, w io.Writer, t target) error {
	var size int64
	var read func(p []byte, off int64) (int, error)
	switch {
	case t.file != nil:
		r := b.reader(*t.file)
		size, read = t.file.Size, func(p []byte, off int64) (int, error) { return r.ReadAt(ctx, p, off) }
	case t.tree != nil && t.entry.Attr.Mode&syscall.S_IFMT == syscall.S_IFREG:
		size, read = t.entry.Attr.Size, func(p []byte, off int64) (int, error) { return t.tree.ReadAt(ctx, t.entry.Ino, p, off) }
	default:
		return usageError{fmt.Errorf("PATH %q is not a regular file", t.path)}
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n, err := read(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF && off < size {
			return fmt.Errorf("read %s: ends at %d of %d bytes", t.path, off, size)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s at %d: %w", t.path, off, err)
		}
	}
	return nil
}
