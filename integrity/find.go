package integrity

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/osimagefs/osimagefs/image"
)

// ArtifactType is the artifactType of a manifest that attaches chunk
// tables to an image manifest (its subject) as an OCI referrer.
const ArtifactType = image.ArtifactTypeChunkTables

// AnnotationOf, on a chunk table's descriptor, names the layer it covers.
const AnnotationOf = image.AnnotationChunkTableOf

// Source is what Find reads from; blobstore.Store is one.
type Source interface {
	// Manifest fetches the manifest desc names; Find checks its digest.
	Manifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, string, error)
	// Referrers lists the manifests of artifactType whose subject is the
	// manifest subject: the referrers API, or its tag-schema fallback.
	Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
	// BlobUpTo fetches a whole blob of at most limit bytes; Find checks
	// its digest.
	BlobUpTo(ctx context.Context, desc ocispec.Descriptor, limit int64) ([]byte, error)
}

// maxReferrers bounds the chunk-table referrers read per manifest.
const maxReferrers = 8

// tableRef is a table's descriptor and where it was listed.
type tableRef struct {
	desc ocispec.Descriptor
	from string
}

// Find returns the chunk tables of the images' layers: those a manifest
// lists, or else those attached to it as referrers. Every table is checked
// against the layer it covers; one that disagrees (another digest or size,
// a malformed table) is an error, never trusted. A referrers lookup that
// fails is a warning: that image's layers then have no table.
func Find(ctx context.Context, src Source, images []image.Image) ([]Found, []string, error) {
	var (
		mu       sync.Mutex
		found    []Found
		warnings []string
	)
	warn := func(format string, args ...any) {
		mu.Lock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, img := range images {
		g.Go(func() error {
			var refs []tableRef
			for _, t := range img.Tables {
				refs = append(refs, tableRef{t, "manifest " + img.Digest.String()})
			}
			if len(refs) == 0 {
				var err error
				if refs, err = referrerTables(ctx, src, img.Digest, warn); err != nil {
					warn("%s: chunk tables not looked up: %v", img.Dir, err)
					return nil
				}
			}
			// The tables of one image are fetched in parallel too.
			tg, tctx := errgroup.WithContext(ctx)
			for _, r := range refs {
				tg.Go(func() error {
					t, err := fetchTable(tctx, src, img, r, warn)
					if err != nil || t == nil {
						return err
					}
					mu.Lock()
					found = append(found, Found{Table: t, From: r.from})
					mu.Unlock()
					return nil
				})
			}
			return tg.Wait()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return found, warnings, nil
}

// referrerTables lists the tables attached to manifest subject.
func referrerTables(ctx context.Context, src Source, subject digest.Digest, warn func(string, ...any)) ([]tableRef, error) {
	descs, err := src.Referrers(ctx, subject, ArtifactType)
	if err != nil {
		return nil, err
	}
	var out []tableRef
	n := 0
	for _, d := range descs {
		if d.ArtifactType != "" && d.ArtifactType != ArtifactType && d.ArtifactType != ocispec.MediaTypeEmptyJSON {
			continue // a registry that ignores the filter; one that reports the
			// empty config's type read only the config: the manifest says below
		}
		if n++; n > maxReferrers {
			warn("manifest %s: more than %d chunk-table referrers; the rest are ignored", subject, maxReferrers)
			break
		}
		raw, _, err := src.Manifest(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("fetch referrer %s: %w", d.Digest, err)
		}
		if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm().FromBytes(raw) != d.Digest {
			return nil, fmt.Errorf("referrer %s: its bytes do not match its digest", d.Digest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("referrer %s: %w", d.Digest, err)
		}
		if m.Subject == nil || m.Subject.Digest != subject {
			warn("referrer %s of manifest %s names another subject; ignored", d.Digest, subject)
			continue
		}
		at := m.ArtifactType
		if at == "" && m.Config.MediaType != "" {
			at = m.Config.MediaType
		}
		if at != ArtifactType {
			continue
		}
		for _, l := range m.Layers {
			if image.IsChunkTable(l.MediaType) {
				out = append(out, tableRef{l, "referrer " + d.Digest.String()})
			}
		}
	}
	return out, nil
}

// fetchTable fetches, parses and checks the table r for a layer of img. It
// returns nil for a table of no layer of img (with a warning).
func fetchTable(ctx context.Context, src Source, img image.Image, r tableRef, warn func(string, ...any)) (*Table, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("chunk table %s (in %s) refused: %s", r.desc.Digest, r.from, fmt.Sprintf(format, args...))
	}
	if r.desc.Size > MaxTableSize {
		return nil, refuse("%d bytes, more than the limit of %d", r.desc.Size, MaxTableSize)
	}
	if err := r.desc.Digest.Validate(); err != nil {
		return nil, refuse("%v", err)
	}
	raw, err := src.BlobUpTo(ctx, r.desc, MaxTableSize)
	if err != nil {
		return nil, fmt.Errorf("fetch chunk table %s (in %s): %w", r.desc.Digest, r.from, err)
	}
	if int64(len(raw)) != r.desc.Size || r.desc.Digest.Algorithm().FromBytes(raw) != r.desc.Digest {
		return nil, refuse("its bytes do not match its descriptor")
	}
	t, err := Parse(raw)
	if err != nil {
		return nil, refuse("%v", err)
	}
	if of := r.desc.Annotations[AnnotationOf]; of != "" && of != t.Blob.String() {
		return nil, refuse("its descriptor says it covers %s, the table says %s", of, t.Blob)
	}
	for _, l := range img.Layers {
		if l.Digest == t.Blob {
			if err := t.Covers(l); err != nil {
				return nil, refuse("%v", err)
			}
			return t, nil
		}
	}
	warn("%s: chunk table %s covers %s, which is no layer of manifest %s; ignored", img.Dir, r.desc.Digest, t.Blob, img.Digest)
	return nil, nil
}

// Describe is a one-line summary of where tables were found, for logs.
func Describe(found []Found) string {
	from := map[string]int{}
	for _, f := range found {
		from[strings.Fields(f.From)[0]]++
	}
	return fmt.Sprintf("%d chunk tables (%d from manifests, %d from referrers)", len(found), from["manifest"], from["referrer"])
}
