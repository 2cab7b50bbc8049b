package contents

import (
	"context"
	"syscall"

	"github.com/osimagefs/osimagefs/contents/node"
)

// rootDir is the attributes of a directory that is not stored anywhere:
// a disk's root, or the root of what was not recognised.
type rootDir struct{}

func (rootDir) attr() node.Attr { return node.Attr{Mode: syscall.S_IFDIR | 0o555, Nlink: 2} }

// emptyFS is what a layer or partition whose format is not recognised
// shows: an empty directory.
type emptyFS struct{ root rootDir }

func (emptyFS) Root() node.Ino { return 1 }

func (e emptyFS) Attr(ctx context.Context, ino node.Ino) (node.Attr, error) {
	if ino != 1 {
		return node.Attr{}, syscall.ENOENT
	}
	return e.root.attr(), nil
}

func (emptyFS) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	if ino != 1 {
		return nil, syscall.ENOENT
	}
	return nil, nil
}

func (emptyFS) Readlink(ctx context.Context, ino node.Ino) (string, error) {
	return "", node.ErrNotLink
}

func (emptyFS) ReadAt(ctx context.Context, ino node.Ino, p []byte, off int64) (int, error) {
	return 0, node.ErrNotFile
}
