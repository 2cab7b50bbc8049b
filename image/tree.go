package image

import (
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	// Images are the OS-image manifests the files come from, in tree
	// order, for what looks up artifacts attached to them.
	Images []Image
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

// Image is one OS-image manifest of a tree.
type Image struct {
	// Digest names the manifest.
	Digest digest.Digest
	// Dir is its directory in the tree, <arch>/<variant>.
	Dir string
	// Layers are its layers in manifest order, chunk tables excepted.
	Layers []ocispec.Descriptor
	// Tables are the chunk tables the manifest lists (MediaTypeChunkTable).
	Tables []ocispec.Descriptor
}
