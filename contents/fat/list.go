package fat

import (
	"context"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

// dent is one listed object and its Ino.
type dent struct {
	e   entry
	ino node.Ino
}

// list reads the directory e (Ino ino): the fixed root region of FAT12/16
// or a cluster chain, at most Limits.DirBytes of it and Limits.Entries
// names, stopping at the end marker.
func (f *FS) list(ctx context.Context, ino node.Ino, e entry) ([]dent, error) {
	p := &lister{f: f, ino: ino}
	if ino == rootIno && f.g.kind != 32 {
		if f.g.rootLen > f.lim.DirBytes {
			return nil, fmt.Errorf("fat: root directory of %d bytes: %w: over the %d-byte limit", f.g.rootLen, node.ErrCorrupt, f.lim.DirBytes)
		}
		b := make([]byte, f.g.rootLen)
		if err := f.read(ctx, b, f.g.rootOff, "root directory"); err != nil {
			return nil, err
		}
		_, err := p.parse(b, f.g.rootOff)
		return p.out, err
	}
	if !f.g.valid(e.cluster) {
		return nil, fmt.Errorf("fat: directory ino %d: %w: first cluster %d", ino, node.ErrCorrupt, e.cluster)
	}
	seen := map[uint32]bool{}
	b := make([]byte, f.g.clusterSize)
	for c := e.cluster; ; {
		if seen[c] {
			return nil, fmt.Errorf("fat: directory ino %d: %w: its chain loops at cluster %d", ino, node.ErrCorrupt, c)
		}
		seen[c] = true
		if int64(len(seen))*f.g.clusterSize > f.lim.DirBytes {
			return nil, fmt.Errorf("fat: directory ino %d: %w: over the %d-byte limit", ino, node.ErrCorrupt, f.lim.DirBytes)
		}
		off := f.g.clusterOff(c)
		if err := f.read(ctx, b, off, "directory cluster"); err != nil {
			return nil, err
		}
		end, err := p.parse(b, off)
		if err != nil || end {
			return p.out, err
		}
		next, ok, err := f.t.follow(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("fat: directory ino %d: %w", ino, err)
		}
		if !ok {
			return p.out, nil
		}
		c = next
	}
}

// lister is the state of one listing across the clusters of a directory.
type lister struct {
	f    *FS
	ino  node.Ino
	long longName
	out  []dent
}

// parse takes the entries of b, read at off, reporting end true at the
// end marker.
func (p *lister) parse(b []byte, off int64) (end bool, err error) {
	for i := 0; i+32 <= len(b); i += 32 {
		d := b[i : i+32]
		switch {
		case d[0] == 0:
			return true, nil
		case d[0] == 0xe5:
			p.long = longName{}
			continue
		case d[11]&0x3f == attrLFN:
			p.long.add(d)
			continue
		case d[11]&attrVolume != 0:
			p.long = longName{}
			continue
		}
		name, ok := p.long.name(d)
		if !ok {
			name = shortName(d)
		}
		if name == "." || name == ".." {
			continue
		}
		if len(p.out) >= p.f.lim.Entries {
			return false, fmt.Errorf("fat: directory ino %d: %w: over %d entries", p.ino, node.ErrCorrupt, p.f.lim.Entries)
		}
		e := parseShort(d, p.f.g.kind == 32)
		e.name = name
		p.out = append(p.out, dent{e: e, ino: node.Ino(off+int64(i)) + 1})
	}
	return false, nil
}
