package publish

import (
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// Step is what is being done to a file's bytes.
type Step string

const (
	// StepHash: the file is read to compute its sha256 and size.
	StepHash Step = "hash"
	// StepUpload: the file is sent to the registry.
	StepUpload Step = "upload"
	// StepIndex: a layer streams from the registry to build its chunk
	// table (AttachTables).
	StepIndex Step = "index"
)

// Blob describes one file of the image.
type Blob struct {
	Role      image.Role
	Path      string
	MediaType string
	Size      int64
	// Digest is "" during StepHash.
	Digest digest.Digest
}

// Progress observes the byte streams of a push, one file at a time: Push
// never makes two calls at once, and calls Start, then any number of
// Advance, then Finish, before the next Start. Only the files of
// Options.Files are reported, not the small config and cmdline blobs.
type Progress interface {
	// Start: the bytes of b are about to be read (StepHash) or sent
	// (StepUpload). After a retried upload Start comes again for the same
	// blob, and the count restarts at 0.
	Start(step Step, b Blob)
	// Advance: n more bytes were read or sent.
	Advance(n int64)
	// Finish: the stream started last ended; err is nil on success.
	Finish(err error)
	// Exists: the registry already has b, so it is not uploaded.
	Exists(b Blob)
}

// reporter serialises calls to a Progress, which may be nil. Upload bodies
// are read by net/http's goroutines, so without it a retry could overlap
// the end of a failed attempt.
type reporter struct {
	mu     sync.Mutex
	p      Progress
	active bool
}

func (r *reporter) start(step Step, b Blob) {
	if r.p == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Start(step, b)
	r.active = true
}

func (r *reporter) advance(n int64) {
	if r.p == nil || n == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active {
		r.p.Advance(n)
	}
}

// finish ends the current stream, if one was started.
func (r *reporter) finish(err error) {
	if r.p == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active {
		r.p.Finish(err)
		r.active = false
	}
}

func (r *reporter) exists(b Blob) {
	if r.p == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Exists(b)
}
