package contents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Entry is one name of a directory with what stat shows of it.
type Entry struct {
	Name string
	Ino  node.Ino
	Attr node.Attr
}

// Tree is an opened layer's contents as its consumers see them: a node.FS
// whose panics are errors, whose names are safe, and whose directories
// form a tree. Every method is safe for concurrent use.
type Tree struct {
	fs     node.FS
	format Format
	name   string // the layer, for log lines
	log    *slog.Logger
	limits node.Limits

	mu     sync.Mutex
	places map[node.Ino]place // directory -> where it was first listed
	logged bool               // a corruption was logged; later ones go to debug
}

// place is where a directory lives: its parent, its name there, and how
// deep it is (the root is 0).
type place struct {
	parent node.Ino
	name   string
	depth  int
}

// newTree wraps fs, the contents of the layer called name.
func newTree(fs node.FS, format Format, name string, opt node.Options) *Tree {
	t := &Tree{fs: fs, format: format, name: name, log: opt.Logger(), limits: opt.Limits.Or(),
		places: map[node.Ino]place{}}
	t.places[fs.Root()] = place{}
	return t
}

// Format is what the layer was recognised as; Unknown for an empty Tree.
func (t *Tree) Format() Format { return t.format }

// Root is the top directory.
func (t *Tree) Root() node.Ino { return t.fs.Root() }

// Attr returns what stat shows of ino.
func (t *Tree) Attr(ctx context.Context, ino node.Ino) (a node.Attr, err error) {
	defer t.contain("stat", ino, &err)
	return t.fs.Attr(ctx, ino)
}

// Readlink returns a symlink's target.
func (t *Tree) Readlink(ctx context.Context, ino node.Ino) (s string, err error) {
	defer t.contain("readlink", ino, &err)
	s, err = t.fs.Readlink(ctx, ino)
	if err == nil && (len(s) > t.limits.LinkBytes || strings.IndexByte(s, 0) >= 0) {
		err = fmt.Errorf("symlink target of %d bytes: %w", len(s), node.ErrCorrupt)
	}
	return s, err
}

// ReadAt reads a regular file's content.
func (t *Tree) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (n int, err error) {
	defer t.contain("read", ino, &err)
	return t.fs.ReadAt(ctx, ino, p, off)
}

// List returns the entries of directory dir, with their attributes. Names
// that no file system may hold ("", ".", "..", or with '/' or NUL), repeats
// of a name, entries over the limit and directories already listed
// elsewhere (a loop, or a directory hard link) are left out, with one log
// line for each kind.
func (t *Tree) List(ctx context.Context, dir node.Ino) (out []Entry, err error) {
	defer t.contain("list", dir, &err)
	ents, err := t.fs.ReadDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(ents))
	var dropped []string
	for _, e := range ents {
		if !safeName(e.Name) {
			dropped = append(dropped, fmt.Sprintf("unsafe name %q", e.Name))
			continue
		}
		if seen[e.Name] {
			dropped = append(dropped, fmt.Sprintf("repeated name %q", e.Name))
			continue
		}
		if len(out) >= t.limits.Entries {
			dropped = append(dropped, fmt.Sprintf("%d entries over the limit of %d", len(ents)-len(out), t.limits.Entries))
			break
		}
		a, err := t.attr(ctx, e.Ino)
		if errors.Is(err, node.ErrCorrupt) && !IsFetchError(err) {
			dropped = append(dropped, fmt.Sprintf("%q: %v", e.Name, err))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat %q: %w", e.Name, err)
		}
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			if why := t.adopt(e.Ino, dir, e.Name); why != "" {
				dropped = append(dropped, fmt.Sprintf("directory %q: %s", e.Name, why))
				continue
			}
		}
		seen[e.Name] = true
		out = append(out, Entry{Name: e.Name, Ino: e.Ino, Attr: a})
	}
	if len(dropped) > 0 {
		t.log.Warn("contents: entries left out", "layer", t.name, "dir", dir, "count", len(dropped), "first", dropped[0])
	}
	return out, nil
}

// attr is Attr with a panic contained but not logged: List logs it.
func (t *Tree) attr(ctx context.Context, ino node.Ino) (a node.Attr, err error) {
	defer recovered(string(t.format), &err)
	return t.fs.Attr(ctx, ino)
}

// Lookup finds name in directory dir.
func (t *Tree) Lookup(ctx context.Context, dir node.Ino, name string) (Entry, error) {
	ents, err := t.List(ctx, dir)
	if err != nil {
		return Entry{}, err
	}
	for _, e := range ents {
		if e.Name == name {
			return e, nil
		}
	}
	return Entry{}, fmt.Errorf("%q: %w", name, syscall.ENOENT)
}

// adopt records that directory ino lives in parent under name, and says
// why not ("" when it may): a directory found in a second place (a loop,
// or a directory hard link) would make the tree a graph, and the limits
// bound how many directories and how deep.
func (t *Tree) adopt(ino, parent node.Ino, name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.places[ino]; ok {
		if ino == t.fs.Root() || p.parent != parent || p.name != name {
			return "listed in a second place (a loop or a directory hard link)"
		}
		return ""
	}
	depth := t.places[parent].depth + 1
	switch {
	case len(t.places) >= t.limits.Objects:
		return fmt.Sprintf("over the limit of %d directories", t.limits.Objects)
	case depth > t.limits.Depth:
		return fmt.Sprintf("deeper than the limit of %d", t.limits.Depth)
	}
	t.places[ino] = place{parent: parent, name: name, depth: depth}
	return ""
}

// contain turns a panic in a reader into an error wrapping node.ErrCorrupt
// and logs the first corruption of the layer at warning level, later ones
// at debug level, so a broken image costs one line.
func (t *Tree) contain(op string, ino node.Ino, errp *error) {
	if v := recover(); v != nil {
		*errp = fmt.Errorf("%s: the reader failed: %v: %w", t.format, v, node.ErrCorrupt)
	}
	if *errp == nil || !errors.Is(*errp, node.ErrCorrupt) || IsFetchError(*errp) {
		return
	}
	*errp = fmt.Errorf("%s %s of %s: %w", op, inoName(ino), t.name, *errp)
	t.mu.Lock()
	first := !t.logged
	t.logged = true
	t.mu.Unlock()
	if first {
		t.log.Warn("contents: corrupt image", "layer", t.name, "format", t.format, "err", *errp)
	} else {
		t.log.Debug("contents: corrupt image", "layer", t.name, "format", t.format, "err", *errp)
	}
}

func inoName(ino node.Ino) string { return fmt.Sprintf("inode %d", ino) }

// safeName reports whether a directory entry may appear in a file system.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsAny(s, "/\x00")
}
