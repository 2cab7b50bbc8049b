package fat

import (
	"context"
	"fmt"
	"io"

	"github.com/osimagefs/osimagefs/contents/node"
)

// ReadAt reads a file's content, one run of contiguous clusters per read.
// The first read of a file checks its whole chain: in range, no loop, long
// enough for the size.
func (f *FS) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	e, err := f.entry(ctx, ino)
	if err != nil {
		return 0, err
	}
	if e.dir() {
		return 0, fmt.Errorf("fat: ino %d: %w", ino, node.ErrNotFile)
	}
	size := int64(e.size)
	if off < 0 {
		return 0, fmt.Errorf("fat: ino %d: negative offset %d", ino, off)
	}
	if off >= size {
		return 0, io.EOF
	}
	if err := f.checkChain(ctx, ino, e); err != nil {
		return 0, err
	}
	want := min(int64(len(p)), size-off)
	cs := f.g.clusterSize
	n := int64(0)
	for n < want {
		pos := off + n
		c, err := f.seek(ctx, ino, e.cluster, pos/cs)
		if err != nil {
			return int(n), err
		}
		// Extend the read over the clusters that follow c on the disk.
		run := cs - pos%cs
		last := position{pos / cs, c}
		for n+run < want {
			next, ok, err := f.t.follow(ctx, last.cluster)
			if err != nil {
				return int(n), err
			}
			if !ok || next != last.cluster+1 {
				break
			}
			last = position{last.index + 1, next}
			run += cs
		}
		run = min(run, want-n)
		if err := f.read(ctx, p[n:n+run], f.g.clusterOff(c)+pos%cs, "file data"); err != nil {
			return int(n), fmt.Errorf("fat: ino %d: %w", ino, err)
		}
		f.cursors.Add(ino, last)
		n += run
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// checkChain checks once that e's chain holds its size.
func (f *FS) checkChain(ctx context.Context, ino node.Ino, e entry) error {
	count, ok := f.chains.Get(e.cluster)
	if !ok {
		var err error
		if count, err = f.t.length(ctx, e.cluster); err != nil {
			return fmt.Errorf("fat: ino %d: %w", ino, err)
		}
		f.chains.Add(e.cluster, count)
	}
	if count*f.g.clusterSize < int64(e.size) {
		return fmt.Errorf("fat: ino %d: %w: %d bytes in a chain of %d clusters", ino, node.ErrCorrupt, e.size, count)
	}
	return nil
}

// seek returns the cluster at index i of the chain from first, starting
// from where the last read of ino ended when that is not past i.
func (f *FS) seek(ctx context.Context, ino node.Ino, first uint32, i int64) (uint32, error) {
	at := position{0, first}
	if p, ok := f.cursors.Get(ino); ok && p.index <= i {
		at = p
	}
	for at.index < i {
		next, ok, err := f.t.follow(ctx, at.cluster)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("fat: ino %d: %w: chain ends at cluster index %d", ino, node.ErrCorrupt, at.index)
		}
		at = position{at.index + 1, next}
	}
	return at.cluster, nil
}
