package cpio

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
)

// maxNameBytes bounds the bytes of all paths an FS indexes.
const maxNameBytes = 256 << 20

// builder makes the index of an FS from the members the scan finds, as
// the kernel would apply them to an empty rootfs.
type builder struct {
	fs        *FS
	lim       node.Limits
	log       *slog.Logger
	paths     map[string]slot
	links     map[linkKey]node.Ino // this archive's hard links
	nameBytes int64
	dropped   int
}

// slot is where a path is listed: the Ino it names and its place in its
// parent's kids.
type slot struct {
	ino, dir node.Ino
	i        int
}

// linkKey names one file's hard links within an archive.
type linkKey struct{ major, minor, ino, typ uint32 }

// member is one archive member the scan parsed.
type member struct {
	h      header
	name   string
	seg    int32
	off    int64
	target string
}

func (b *builder) drop(m *member, why string) {
	b.dropped++
	b.log.Warn("cpio: member dropped", "name", m.name, "why", why)
}

// cleanName normalises a member name like the kernel's path lookup would
// see it: no leading "./" or "/"; "" is the root. It refuses names with
// "..", "." or empty components.
func cleanName(s string) (string, bool) {
	for {
		if strings.HasPrefix(s, "./") {
			s = s[2:]
		} else if strings.HasPrefix(s, "/") {
			s = s[1:]
		} else {
			break
		}
	}
	if s == "." || s == "" {
		return "", true
	}
	for c := range strings.SplitSeq(s, "/") {
		if c == "" || c == "." || c == ".." {
			return "", false
		}
	}
	return s, true
}

func (b *builder) newEntry(e entry) (node.Ino, error) {
	if len(b.fs.entries) >= b.lim.Objects {
		return 0, fmt.Errorf("cpio: more than %d members (Limits.Objects): %w", b.lim.Objects, node.ErrCorrupt)
	}
	b.fs.entries = append(b.fs.entries, e)
	return node.Ino(len(b.fs.entries)), nil
}

// setAttrs takes a member's attributes for e.
func setAttrs(e *entry, h *header) {
	e.mode, e.uid, e.gid, e.nlink, e.mtime = h.mode, h.uid, h.gid, h.nlink, h.mtime
}

// add applies one member to the index.
func (b *builder) add(m *member) error {
	if strings.IndexByte(m.name, 0) >= 0 {
		b.drop(m, "NUL in name")
		return nil
	}
	path, ok := cleanName(m.name)
	if !ok {
		b.drop(m, "empty, \".\" or \"..\" component")
		return nil
	}
	h := &m.h
	typ := h.mode & syscall.S_IFMT
	switch typ {
	case syscall.S_IFREG, syscall.S_IFDIR, syscall.S_IFLNK, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFIFO, syscall.S_IFSOCK:
	default:
		b.drop(m, fmt.Sprintf("unknown file type %#o", typ))
		return nil
	}
	if path == "" {
		if typ != syscall.S_IFDIR {
			b.drop(m, "root is not a directory")
			return nil
		}
		setAttrs(&b.fs.entries[0], h)
		return nil
	}
	if strings.Count(path, "/")+1 > b.lim.Depth {
		b.drop(m, "deeper than Limits.Depth")
		return nil
	}
	dir, base := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i], path[i+1:]
	}
	parent, err := b.dir(dir)
	if err != nil || parent == 0 {
		if parent == 0 && err == nil {
			b.drop(m, "a parent is not a directory")
		}
		return err
	}
	old, exists := b.paths[path]

	linkable := h.nlink >= 2 && typ != syscall.S_IFDIR && typ != syscall.S_IFLNK
	key := linkKey{h.devMajor, h.devMinor, h.ino, typ}
	if linkable {
		if ino, ok := b.links[key]; ok {
			// The kernel links the name to the first one and, for a
			// regular file, applies this member's attributes and data.
			if e := &b.fs.entries[ino-1]; typ == syscall.S_IFREG {
				setAttrs(e, h)
				if h.filesize > 0 {
					e.size, e.seg, e.off = int64(h.filesize), m.seg, m.off
				}
			}
			return b.put(m, parent, base, path, ino, old, exists)
		}
	}
	if exists {
		oe := &b.fs.entries[old.ino-1]
		if oe.isDir() && typ == syscall.S_IFDIR {
			setAttrs(oe, h)
			return nil
		}
		if oe.isDir() && len(oe.kids) > 0 {
			b.drop(m, "replaces a directory that is not empty")
			return nil
		}
	}
	e := entry{seg: -1}
	setAttrs(&e, h)
	switch typ {
	case syscall.S_IFREG:
		e.size, e.seg, e.off = int64(h.filesize), m.seg, m.off
	case syscall.S_IFLNK:
		e.target, e.size = m.target, int64(len(m.target))
	case syscall.S_IFCHR, syscall.S_IFBLK:
		e.rdev = unix.Mkdev(h.rdevMajor, h.rdevMinor)
	}
	ino, err := b.newEntry(e)
	if err != nil {
		return err
	}
	if linkable {
		b.links[key] = ino
	}
	return b.put(m, parent, base, path, ino, old, exists)
}

// put lists path in its parent as ino, in the place of what it replaces.
func (b *builder) put(m *member, parent node.Ino, base, path string, ino node.Ino, old slot, exists bool) error {
	if exists {
		b.fs.entries[old.dir-1].kids[old.i].Ino = ino
		b.paths[path] = slot{ino, old.dir, old.i}
		return nil
	}
	pe := &b.fs.entries[parent-1]
	if len(pe.kids) >= b.lim.Entries || pe.kidBytes+int64(len(base)) > b.lim.DirBytes {
		b.drop(m, "directory over Limits.Entries or Limits.DirBytes")
		return nil
	}
	b.nameBytes += int64(len(path))
	if b.nameBytes > maxNameBytes {
		return fmt.Errorf("cpio: names over %d bytes: %w", maxNameBytes, node.ErrCorrupt)
	}
	pe.kids = append(pe.kids, node.DirEntry{Name: base, Ino: ino})
	pe.kidBytes += int64(len(base))
	b.paths[path] = slot{ino, parent, len(pe.kids) - 1}
	return nil
}

// dir returns the directory at path, making it and its missing parents as
// 0755 root directories; 0 if a component is not a directory.
func (b *builder) dir(path string) (node.Ino, error) {
	if path == "" {
		return 1, nil
	}
	if s, ok := b.paths[path]; ok {
		if !b.fs.entries[s.ino-1].isDir() {
			return 0, nil
		}
		return s.ino, nil
	}
	dir, base := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i], path[i+1:]
	}
	parent, err := b.dir(dir)
	if err != nil || parent == 0 {
		return 0, err
	}
	ino, err := b.newEntry(implicitDir())
	if err != nil {
		return 0, err
	}
	m := &member{name: path}
	if err := b.put(m, parent, base, path, ino, slot{}, false); err != nil {
		return 0, err
	}
	if _, ok := b.paths[path]; !ok {
		return 0, nil // dropped by a limit
	}
	return ino, nil
}

// implicitDir is a directory the archive implies but does not hold.
func implicitDir() entry {
	return entry{mode: syscall.S_IFDIR | 0o755, nlink: 2, seg: -1}
}
