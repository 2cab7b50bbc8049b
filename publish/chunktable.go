package publish

import (
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
)

// tableDescriptor is the manifest's reference to the chunk table of layer
// (format: package integrity). It has no org.opencontainers.image.title,
// so tools that pull titled layers as files (oras) leave it alone, and a
// media type no consumer of OS images picks; the mount keeps it out of the
// tree and checks the layer's pieces with it.
func tableDescriptor(d digest.Digest, size int64, layer digest.Digest) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:   image.MediaTypeChunkTable,
		Digest:      d,
		Size:        size,
		Annotations: map[string]string{image.AnnotationChunkTableOf: layer.String()},
	}
}

// chunkTable is a table to push and the layer it covers.
type chunkTable struct {
	table *integrity.Table
	blob  Blob
}
