package publish

import (
	"encoding/json"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// Annotation keys written on manifests and layers (section 2 of the design
// notes).
const (
	AnnotationTitle        = ocispec.AnnotationTitle // org.opencontainers.image.title
	AnnotationVariant      = "variant"
	AnnotationArchitecture = "architecture"
)

// config is the JSON of the config blob: IronCore's {"commandLine": ...},
// or {} without a command line.
type config struct {
	CommandLine string `json:"commandLine,omitempty"`
}

func configJSON(cmdline string) []byte {
	b, _ := json.Marshal(config{CommandLine: cmdline}) // cannot fail
	return b
}

// descriptor is the manifest's reference to a blob.
func descriptor(mediaType string, d digest.Digest, size int64, title string) ocispec.Descriptor {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: size}
	if title != "" {
		desc.Annotations = map[string]string{AnnotationTitle: title}
	}
	return desc
}

// layerDescriptor describes a file layer, titled with the role's file name.
func layerDescriptor(b Blob) ocispec.Descriptor {
	return descriptor(b.MediaType, b.Digest, b.Size, b.Role.FileName())
}

// manifestJSON serialises the manifest of one platform. The mediaType field
// is left out when the format says so (ocispec.Manifest omits it if empty).
func manifestJSON(f Format, cfg ocispec.Descriptor, layers []ocispec.Descriptor, annotations map[string]string) []byte {
	m := ocispec.Manifest{
		MediaType:    f.manifestMediaTypeField(),
		ArtifactType: f.artifactType(),
		Config:       cfg,
		Layers:       layers,
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m) // cannot fail: strings, numbers and maps of strings
	return b
}

// indexJSON serialises an OCI index.
func indexJSON(idx ocispec.Index) []byte {
	idx.SchemaVersion = 2
	idx.MediaType = image.MediaTypeOCIIndex
	b, _ := json.Marshal(idx)
	return b
}
