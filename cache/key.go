package cache

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Key names one chunk: the Index-th chunk of the blob Digest.
type Key struct {
	Digest digest.Digest
	Index  int64
}

func (k Key) String() string { return fmt.Sprintf("chunk %d of %s", k.Index, k.Digest) }
