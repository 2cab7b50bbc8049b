package layout

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

// Bounds of the scan of a layout's documents: how many it reads, and how
// many bytes of them in all.
const (
	maxScanDocuments = image.MaxManifests * image.MaxIndexDepth
	maxScanBytes     = 16 * image.MaxTotalDocumentSize
)

// scan is what a layout's documents say about one another, read once: the
// referrers of each manifest, and every descriptor reachable from
// index.json.
type scan struct {
	referrers map[digest.Digest][]ocispec.Descriptor // by subject, in the order found
	referrer  map[digest.Digest]bool                 // documents that are referrers, or a fallback tag's index of them
	known     map[digest.Digest]ocispec.Descriptor   // every descriptor reachable from index.json (the first seen)
	err       error                                  // the scan stopped early
}

// add records desc as a referrer of subject, once.
func (s *scan) add(subject digest.Digest, desc ocispec.Descriptor) {
	if slices.ContainsFunc(s.referrers[subject], func(d ocispec.Descriptor) bool { return d.Digest == desc.Digest }) {
		return
	}
	s.referrers[subject] = append(s.referrers[subject], desc)
}

// scanned returns the scan, reading the layout's documents the first time.
func (l *Layout) scanned(ctx context.Context) *scan {
	l.scanOnce.Do(func() { l.scan = l.scanDocuments(context.WithoutCancel(ctx)) })
	return l.scan
}

// document is what the scan reads of an index or manifest.
type document struct {
	MediaType    string               `json:"mediaType"`
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Annotations  map[string]string    `json:"annotations"`
}

// isIndex reports whether a document (listed with media type listed) is an
// index.
func (d document) isIndex(listed string) bool {
	mt := d.MediaType
	if mt == "" {
		mt = listed
	}
	return image.IsIndex(mt) || (mt == "" && d.Manifests != nil && d.Layers == nil && d.Config == nil)
}

// scanDocuments reads every index and manifest reachable from index.json
// (indexes nested up to image.MaxIndexDepth), breadth first. A manifest or
// index with a subject is a referrer of it, described as the referrers API
// describes one: its media type, digest and size, its artifactType (else
// its config's media type) and its annotations. An index.json entry tagged
// with the tag-schema fallback tag of a manifest (sha256-<hex>) that is an
// index lists referrers of that manifest as they are. A document that
// cannot be read, or does not match its digest, is skipped (logged).
func (l *Layout) scanDocuments(ctx context.Context) *scan {
	s := &scan{referrers: map[digest.Digest][]ocispec.Descriptor{}, referrer: map[digest.Digest]bool{}, known: map[digest.Digest]ocispec.Descriptor{}}
	type item struct {
		desc  ocispec.Descriptor
		depth int
	}
	var queue []item
	for _, d := range l.index.Manifests {
		queue = append(queue, item{d, 0})
	}
	docs, total := 0, int64(0)
	for ; len(queue) > 0; queue = queue[1:] {
		it := queue[0]
		if _, ok := s.known[it.desc.Digest]; ok || it.desc.Digest.Validate() != nil {
			continue
		}
		s.known[it.desc.Digest] = it.desc
		if docs++; docs > maxScanDocuments {
			s.err = errorf(ErrTooLarge, "more than %d indexes and manifests reachable from %s", maxScanDocuments, l.path(indexFile))
			return s
		}
		raw, err := l.BlobUpTo(ctx, it.desc, image.MaxDocumentSize)
		if err != nil {
			l.log.Debug("document skipped by the referrers scan", "digest", it.desc.Digest, "err", err)
			continue
		}
		if total += int64(len(raw)); total > maxScanBytes {
			s.err = errorf(ErrTooLarge, "the indexes and manifests reachable from %s hold more than %d bytes", l.path(indexFile), int64(maxScanBytes))
			return s
		}
		if it.desc.Digest.Algorithm().FromBytes(raw) != it.desc.Digest {
			l.log.Debug("document skipped by the referrers scan: its bytes do not match its digest", "digest", it.desc.Digest)
			continue
		}
		var doc document
		if err := json.Unmarshal(raw, &doc); err != nil {
			l.log.Debug("document skipped by the referrers scan", "digest", it.desc.Digest, "err", err)
			continue
		}
		if doc.Subject != nil && doc.Subject.Digest.Validate() == nil {
			at := doc.ArtifactType
			if at == "" && doc.Config != nil {
				at = doc.Config.MediaType
			}
			mt := doc.MediaType
			if mt == "" {
				mt = it.desc.MediaType
			}
			s.add(doc.Subject.Digest, ocispec.Descriptor{MediaType: mt, Digest: it.desc.Digest, Size: int64(len(raw)), ArtifactType: at, Annotations: doc.Annotations})
			s.referrer[it.desc.Digest] = true
		}
		if !doc.isIndex(it.desc.MediaType) {
			continue
		}
		if subject, ok := fallbackSubject(it.desc.Annotations[ocispec.AnnotationRefName]); ok && it.depth == 0 {
			s.referrer[it.desc.Digest] = true
			for _, m := range doc.Manifests {
				if m.Digest.Validate() == nil {
					s.add(subject, m)
				}
			}
		}
		if it.depth < image.MaxIndexDepth {
			for _, m := range doc.Manifests {
				queue = append(queue, item{m, it.depth + 1})
			}
		}
	}
	return s
}

// fallbackSubject is the manifest whose tag-schema fallback tag tag is
// (<alg>-<hex>), if it is one.
func fallbackSubject(tag string) (digest.Digest, bool) {
	alg, hex, ok := strings.Cut(tag, "-")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// Referrers lists the manifests in the layout whose subject is the
// manifest subject and whose artifactType is artifactType ("" for every
// one): the manifests and indexes reachable from index.json with that
// subject, and those the index tagged with subject's fallback tag
// (sha256-<hex>) lists. The filter is blobstore.Store.Referrers': a
// descriptor that names no artifactType, or the empty config's, is kept,
// for the caller to check the manifest's own. The layout is read once,
// at the first call.
func (l *Layout) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := subject.Validate(); err != nil {
		return nil, fmt.Errorf("list referrers of %q: %w", subject, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", subject, err)
	}
	s := l.scanned(ctx)
	if s.err != nil {
		return nil, fmt.Errorf("list referrers of %s: %w", subject, s.err)
	}
	var out []ocispec.Descriptor
	for _, d := range s.referrers[subject] {
		if referrerMayBe(d, artifactType) {
			out = append(out, d)
		}
	}
	return out, nil
}

// referrerMayBe reports whether the referrer d may be of artifactType ("":
// any): it says so, or says nothing, or says the empty config's type.
func referrerMayBe(d ocispec.Descriptor, artifactType string) bool {
	switch d.ArtifactType {
	case artifactType, "", ocispec.MediaTypeEmptyJSON:
		return true
	}
	return artifactType == ""
}
