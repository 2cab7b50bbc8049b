package image

import (
	"github.com/opencontainers/go-digest"
)

// Tree is everything a mount shows. Files are sorted by Path; directories
// are implied by the paths.
type Tree struct {
	// Digest is the digest the reference resolved to: a mount serves this
	// image for its whole life, even if the tag moves.
	Digest digest.Digest
	// MediaType is the top document's media type.
	MediaType string
	Files     []File
	// Warnings lists what was skipped or renamed, one line each.
	Warnings []string
}

// File is one regular file of the tree.
type File struct {
	// Path is slash-separated and relative to the mount point.
	Path      string
	Role      Role
	MediaType string
	// Digest names the blob holding the content; empty when Data holds it.
	Digest digest.Digest
	Size   int64
	// Data holds the content of documents and of a cmdline taken from the
	// config: small files served from memory, never fetched again.
	Data []byte
	// Platform is "os/arch" of the manifest the file belongs to ("" at the top).
	Platform string
}

// Lazy reports whether the file's content is fetched from the registry on
// read (a layer), rather than held in memory.
func (f File) Lazy() bool { return f.Data == nil }
