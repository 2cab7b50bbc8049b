package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// annotationReferenceDigest is what BuildKit writes on an attestation
// manifest's index entry: the digest of the image it attests.
const annotationReferenceDigest = "vnd.docker.reference.digest"

// platformKey is what makes two index entries "the same platform" for
// AddToIndex: os, architecture and OS-image variant, compared without case.
type platformKey struct {
	os, arch, variant string
}

func (k platformKey) String() string { return k.os + "/" + k.arch + " variant " + k.variant }

// variantFunc returns the variant of an index entry whose os and
// architecture already match: its variant annotation, else that of the
// manifest it points to (fetched), else "default".
type variantFunc func(ctx context.Context, e ocispec.Descriptor) (string, error)

// indexFromExisting turns what the tag points to into an index to merge
// into. An index (OCI or Docker list) is taken as it is; a single OS-image
// manifest becomes the one entry of a new index, its platform taken from its
// architecture annotation.
func indexFromExisting(raw []byte, servedType string, d digest.Digest) (ocispec.Index, error) {
	var probe struct {
		MediaType   string            `json:"mediaType"`
		Manifests   json.RawMessage   `json:"manifests"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return ocispec.Index{}, fmt.Errorf("parse existing %s: %w", d, err)
	}
	if image.IsIndex(servedType) || image.IsIndex(probe.MediaType) || probe.Manifests != nil {
		var idx ocispec.Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return ocispec.Index{}, fmt.Errorf("parse existing index %s: %w", d, err)
		}
		return idx, nil
	}
	arch := probe.Annotations[AnnotationArchitecture]
	if arch == "" {
		return ocispec.Index{}, fmt.Errorf("the tag holds a single manifest %s without an %q annotation, so its platform is unknown: push without add-to-index to replace it", d, AnnotationArchitecture)
	}
	mt := firstNonEmpty(probe.MediaType, servedType, image.MediaTypeOCIManifest)
	e := ocispec.Descriptor{
		MediaType: mt,
		Digest:    d,
		Size:      int64(len(raw)),
		Platform:  &ocispec.Platform{OS: "linux", Architecture: arch},
	}
	if v := probe.Annotations[AnnotationVariant]; v != "" {
		e.Annotations = map[string]string{AnnotationVariant: v}
	}
	return ocispec.Index{Manifests: []ocispec.Descriptor{e}}, nil
}

// mergeIndex puts entry into idx: in place of the entries of the same
// platform key, or appended. Attestation entries that refer to a replaced
// manifest are dropped with it. It returns the digests it removed.
func mergeIndex(ctx context.Context, idx ocispec.Index, entry ocispec.Descriptor, key platformKey, variantOf variantFunc) (ocispec.Index, []digest.Digest, error) {
	var removed []digest.Digest
	out := make([]ocispec.Descriptor, 0, len(idx.Manifests)+1)
	placed := false
	for _, e := range idx.Manifests {
		same, err := samePlatform(ctx, e, key, variantOf)
		if err != nil {
			return ocispec.Index{}, nil, err
		}
		if !same {
			out = append(out, e)
			continue
		}
		if e.Digest != entry.Digest {
			removed = append(removed, e.Digest)
		}
		if !placed {
			out = append(out, entry)
			placed = true
		}
	}
	if !placed {
		out = append(out, entry)
	}
	out = slices.DeleteFunc(out, func(e ocispec.Descriptor) bool {
		ref, ok := e.Annotations[annotationReferenceDigest]
		return ok && slices.Contains(removed, digest.Digest(ref))
	})
	idx.Manifests = out
	return idx, removed, nil
}

// samePlatform reports whether index entry e is for the platform key.
func samePlatform(ctx context.Context, e ocispec.Descriptor, key platformKey, variantOf variantFunc) (bool, error) {
	if e.Platform == nil || image.IsIndex(e.MediaType) {
		return false, nil
	}
	if !strings.EqualFold(e.Platform.OS, key.os) || !strings.EqualFold(e.Platform.Architecture, key.arch) {
		return false, nil
	}
	v, err := variantOf(ctx, e)
	if err != nil {
		return false, err
	}
	return strings.EqualFold(v, key.variant), nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
