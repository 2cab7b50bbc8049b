package fs

import "github.com/osimagefs/osimagefs/image"

// Observer is told what readers get, for metrics (Options.Observer). Its
// methods run on the data path: they must be quick and never block.
type Observer interface {
	// Served: n bytes of f went to a reader.
	Served(f image.File, n int)
	// ReadFailed: a read of f failed with EIO because of err.
	ReadFailed(f image.File, err error)
}

// silent is the Observer of a Root without one.
type silent struct{}

func (silent) Served(image.File, int)       {}
func (silent) ReadFailed(image.File, error) {}
