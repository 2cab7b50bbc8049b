package ext4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// walk visits at most maxObjects objects of fs from its root and reads at
// most maxBytes of each file. It returns the errors it met, each
// annotated with the Ino.
func walk(ctx context.Context, fs node.FS, maxObjects int, maxBytes int64) []error {
	var errs []error
	seen := map[node.Ino]bool{}
	queue := []node.Ino{fs.Root()}
	buf := make([]byte, 64<<10)
	for len(queue) > 0 && len(seen) < maxObjects {
		ino := queue[0]
		queue = queue[1:]
		if seen[ino] {
			continue
		}
		seen[ino] = true
		fail := func(op string, err error) { errs = append(errs, fmt.Errorf("%s %d: %w", op, ino, err)) }
		a, err := fs.Attr(ctx, ino)
		if err != nil {
			fail("Attr", err)
			continue
		}
		switch a.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			ents, err := fs.ReadDir(ctx, ino)
			if err != nil {
				fail("ReadDir", err)
			}
			for _, e := range ents {
				if e.Ino == 0 || e.Ino > node.MaxIno {
					fail("ReadDir", fmt.Errorf("entry %q: Ino %d", e.Name, e.Ino))
				}
				queue = append(queue, e.Ino)
			}
		case syscall.S_IFREG:
			for off := int64(0); off < maxBytes; {
				n, err := fs.ReadAt(ctx, ino, buf, off)
				off += int64(n)
				if err == io.EOF {
					if off != a.Size {
						fail("ReadAt", fmt.Errorf("EOF at %d of a %d-byte file", off, a.Size))
					}
					break
				}
				if err != nil {
					fail("ReadAt", err)
					break
				}
				if n != len(buf) {
					fail("ReadAt", fmt.Errorf("short read %d without an error", n))
					break
				}
			}
		case syscall.S_IFLNK:
			if _, err := fs.Readlink(ctx, ino); err != nil {
				fail("Readlink", err)
			}
		}
	}
	return errs
}

// allCorrupt says whether every error wraps node.ErrCorrupt.
func allCorrupt(errs []error) error {
	for _, err := range errs {
		if !errors.Is(err, node.ErrCorrupt) {
			return err
		}
	}
	return nil
}
