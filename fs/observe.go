package fs

import "github.com/osimagefs/osimagefs/image"

// Observer is told what readers get, for metrics (Options.Observer). Its
// methods run on the data path: they must be quick and never block.
type Observer interface {
	// Served: n bytes of f went to a reader.
	Served(f image.File, n int)
	// ReadFailed: a read of f failed with EIO because of err.
	ReadFailed(f image.File, err error)
	// ReadRequest: the daemon got a READ of f.
	ReadRequest(f image.File)
	// PassthroughOpened: an open of f was handed to the kernel, which
	// reads it from the disk cache itself (no READ comes for it).
	PassthroughOpened(f image.File)
}

// silent is the Observer of a Root without one.
type silent struct{}

func (silent) Served(image.File, int)       {}
func (silent) ReadFailed(image.File, error) {}
func (silent) ReadRequest(image.File)       {}
func (silent) PassthroughOpened(image.File) {}
