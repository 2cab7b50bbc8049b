package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// Source is what Find reads from; blobstore.SharedReferrers is one (the
// same listing as the chunk tables').
type Source interface {
	// Manifest fetches the manifest desc names; Find checks its digest.
	Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, string, error)
	// Referrers lists the manifests of artifactType whose subject is the
	// manifest subject.
	Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
	// BlobUpTo fetches a whole blob of at most limit bytes.
	BlobUpTo(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error)
}

// AnnotationCreated, on a profile referrer, is when it was pushed
// (RFC 3339); of several profiles the newest is used.
const AnnotationCreated = ocispec.AnnotationCreated

// maxReferrers bounds the profile referrers looked at per manifest.
const maxReferrers = 8

// ErrRefused: a profile referrer is malformed, or does not fit the image.
var ErrRefused = errors.New("boot profile refused")

// Found is the profile of one image manifest.
type Found struct {
	Entries  []Entry
	Referrer digest.Digest // the referrer manifest that holds it
}

// Find returns the boot profile attached to img's manifest as a referrer:
// of several, the newest by AnnotationCreated (of equal times, the last
// listed); at most maxReferrers are looked at. None is (nil, nil). A
// profile that is malformed, larger than MaxSize, or names bytes that are
// not in img's layers is an error wrapping ErrRefused, naming the
// referrer: the caller does without it.
func Find(ctx context.Context, src Source, img image.Image) (*Found, error) {
	descs, err := src.Referrers(ctx, img.Digest, ArtifactType)
	if err != nil {
		return nil, fmt.Errorf("look up the boot profile of %s: %w", img.Digest, err)
	}
	// Candidates: those that say they are profiles, or say nothing (a
	// registry that reports no artifactType), newest first; of equal
	// times, the last listed first.
	var cands []ocispec.Descriptor
	for _, d := range descs {
		if d.ArtifactType != "" && d.ArtifactType != ArtifactType && d.ArtifactType != ocispec.MediaTypeEmptyJSON {
			continue
		}
		cands = append(cands, d)
	}
	// Sorted before the cut: listings come in no useful order (the
	// fallback tag's is by digest).
	slices.Reverse(cands)
	slices.SortStableFunc(cands, func(a, b ocispec.Descriptor) int {
		return strings.Compare(b.Annotations[AnnotationCreated], a.Annotations[AnnotationCreated])
	})
	cands = cands[:min(len(cands), maxReferrers)]
	for _, d := range cands {
		entries, err := fetch(ctx, src, img, d)
		if err != nil {
			return nil, fmt.Errorf("boot profile %s of manifest %s: %w: %w", d.Digest, img.Digest, ErrRefused, err)
		}
		if entries != nil {
			return &Found{Entries: entries, Referrer: d.Digest}, nil
		}
		// of another type after all (a chunk-table referrer)
	}
	return nil, nil
}

// fetch reads the profile in referrer d and checks it against img. It
// returns nil, nil for a referrer that is not a boot profile.
func fetch(ctx context.Context, src Source, img image.Image, d ocispec.Descriptor) ([]Entry, error) {
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("its digest: %w", err)
	}
	if d.Size <= 0 || d.Size > image.MaxDocumentSize {
		return nil, fmt.Errorf("its manifest is %d bytes; at most %d", d.Size, image.MaxDocumentSize)
	}
	raw, _, err := src.Manifest(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("fetch its manifest: %w", err)
	}
	if d.Digest.Algorithm().FromBytes(raw) != d.Digest {
		return nil, errors.New("its manifest does not match its digest")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parse its manifest: %w", err)
	}
	if m.Subject == nil || m.Subject.Digest != img.Digest {
		return nil, errors.New("its manifest names another subject")
	}
	at := m.ArtifactType
	if at == "" {
		at = m.Config.MediaType
	}
	if at != ArtifactType {
		return nil, nil
	}
	var layer *ocispec.Descriptor
	for i, l := range m.Layers {
		if l.MediaType == MediaType {
			layer = &m.Layers[i]
			break
		}
	}
	if layer == nil {
		return nil, fmt.Errorf("it has no layer of type %s", MediaType)
	}
	if err := layer.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("its profile's digest: %w", err)
	}
	if layer.Size <= 0 || layer.Size > MaxSize {
		return nil, fmt.Errorf("its profile is %d bytes; at most %d", layer.Size, MaxSize)
	}
	doc, err := src.BlobUpTo(ctx, *layer, layer.Size)
	if err != nil {
		return nil, fmt.Errorf("fetch its profile %s: %w", layer.Digest, err)
	}
	if int64(len(doc)) != layer.Size || layer.Digest.Algorithm().FromBytes(doc) != layer.Digest {
		return nil, fmt.Errorf("its profile %s does not match its descriptor", layer.Digest)
	}
	entries, err := Parse(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	if err := Check(entries, Layers(img)); err != nil {
		return nil, err
	}
	if entries == nil {
		entries = []Entry{}
	}
	return entries, nil
}

// Layers maps the digest of each layer of img to its size, for Check.
func Layers(img image.Image) map[digest.Digest]int64 {
	out := map[digest.Digest]int64{}
	for _, l := range img.Layers {
		out[l.Digest] = l.Size
	}
	return out
}
