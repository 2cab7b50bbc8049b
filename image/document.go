package image

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits on what a document may hold. They keep a hostile registry from
// making the daemon allocate without bound before anything is mounted.
const (
	MaxDocumentSize = 4 << 20 // bytes of one index, manifest or config
	MaxLayers       = 10000   // layers in one manifest
	MaxManifests    = 1000    // entries in one index
	MaxIndexDepth   = 4       // indexes nested in indexes
	MaxLayerSize    = 1 << 44 // 16 TiB: larger sizes are treated as corrupt

	// MaxFiles bounds the files of the whole tree: an index may list one
	// manifest of MaxLayers layers MaxManifests times.
	MaxFiles = 2 * MaxLayers
	// MaxTotalDocumentSize bounds the bytes of all the indexes, manifests
	// and configs of one image (the top included): an index may list
	// MaxManifests manifests of MaxDocumentSize bytes, each with a config
	// as large, and the tree keeps those of OS images in memory.
	MaxTotalDocumentSize = 16 * MaxDocumentSize
)

// document is the union of the fields of an index and a manifest that we
// read. Both OCI and Docker spell them the same way.
type document struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Annotations   map[string]string    `json:"annotations"`
}

// config is the part of an OS image config that matters to the tree.
type config struct {
	CommandLine string `json:"commandLine"`
}

// parseDocument decodes an index or a manifest and decides which it is: the
// document's own mediaType wins; without one, an unambiguous shape (a
// "manifests" list and no "layers" or "config", or the other way round)
// wins over the media type it was served or referenced with, which a
// registry or proxy may get wrong and which is not covered by the digest;
// then that media type; then the shape again (a "manifests" list and no
// "layers" means an index).
func parseDocument(raw []byte, servedType string) (document, bool, error) {
	var d document
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, false, fmt.Errorf("decode JSON: %w", err)
	}
	mt := d.MediaType
	if mt == "" {
		mt = servedType
	}
	indexShape, manifestShape := d.Manifests != nil, d.Layers != nil || d.Config != nil
	var isIndex bool
	if d.MediaType == "" && indexShape != manifestShape {
		isIndex = indexShape
	} else {
		isIndex = IsIndex(mt) || ((mt == "" || !looksLikeManifestType(mt)) && d.Manifests != nil && d.Layers == nil)
	}
	if isIndex {
		if len(d.Manifests) > MaxManifests {
			return d, true, fmt.Errorf("index has %d entries, more than the limit of %d", len(d.Manifests), MaxManifests)
		}
		for i, m := range d.Manifests {
			if err := checkDescriptor(m); err != nil {
				return d, true, fmt.Errorf("index entry %d: %w", i, err)
			}
		}
		return d, true, nil
	}
	if d.Layers == nil && d.Config == nil {
		return d, false, fmt.Errorf("neither an index nor a manifest (media type %q, no layers, no config)", mt)
	}
	if len(d.Layers) > MaxLayers {
		return d, false, fmt.Errorf("manifest has %d layers, more than the limit of %d", len(d.Layers), MaxLayers)
	}
	if d.Config != nil {
		if err := checkDescriptor(*d.Config); err != nil {
			return d, false, fmt.Errorf("config: %w", err)
		}
	}
	for i, l := range d.Layers {
		if err := checkDescriptor(l); err != nil {
			return d, false, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return d, false, nil
}

// looksLikeManifestType reports whether mt names a single manifest.
func looksLikeManifestType(mt string) bool {
	n := normalize(mt)
	return n == normalize(MediaTypeOCIManifest) || n == normalize(MediaTypeDockerManifest) || n == normalize(MediaTypeSeedArtifacts)
}

// checkDescriptor rejects descriptors that cannot be served: a malformed
// digest or an impossible size.
func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%s: negative size %d", d.Digest, d.Size)
	}
	if d.Size > MaxLayerSize {
		return fmt.Errorf("%s: size %d is larger than the limit of %d", d.Digest, d.Size, int64(MaxLayerSize))
	}
	return nil
}

// parseConfig reads commandLine from a config; a config that is not a JSON
// object (or is empty) simply has no command line.
func parseConfig(raw []byte) config {
	var c config
	_ = json.Unmarshal(raw, &c) // a foreign config is not an error: it just has no commandLine
	return c
}
