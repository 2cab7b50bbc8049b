package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/osimagefs/osimagefs/image"
)

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

// ErrRefused: a chunk table disagrees with the layer it is for, or is
// malformed; it is never used.
var ErrRefused = errors.New("refused")

// maxReferrers bounds the chunk-table referrers read per manifest.
const maxReferrers = 8

// tableRef is a table's descriptor and where it was listed.
type tableRef struct {
	desc ocispec.Descriptor
	from string
}

// Find returns the chunk tables of the images' layers: those a manifest
// lists, or else those attached to it as referrers; tables listed in a
// manifest come first, in a fixed order, so they win over referrers for a
// layer two images share. Every table is checked against the layer it
// covers; one that disagrees (another digest or size, a malformed table) is
// an error, never trusted. A lookup or fetch that fails is a warning: the
// layers concerned then have no table.
//
// What a registry can make it fetch is bounded: one table per layer of an
// image, each at most its descriptor's size and MaxTableSize, all together
// at most MaxTablesTotal bytes, 8 at a time.
func Find(ctx context.Context, src Source, images []image.Image) ([]Found, []string, error) {
	var (
		mu       sync.Mutex
		warnings []string
	)
	warn := func(format string, args ...any) {
		mu.Lock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// Which tables: those listed, else the referrers' (looked up in
	// parallel).
	refs := make([][]tableRef, len(images))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, img := range images {
		for _, t := range img.Tables {
			refs[i] = append(refs[i], tableRef{t, "manifest " + img.Digest.String()})
		}
		if len(refs[i]) > 0 {
			continue
		}
		g.Go(func() error {
			r, err := referrerTables(gctx, src, img.Digest, warn)
			if err != nil {
				warn("%s: chunk tables not looked up: %v", img.Dir, err)
			}
			refs[i] = r
			return nil
		})
	}
	_ = g.Wait()

	type job struct {
		img image.Image
		ref tableRef
	}
	var jobs []job
	var total int64
	fetching := map[digest.Digest]bool{} // a table two images list is fetched once
	for _, fromManifest := range []bool{true, false} {
		for i, img := range images {
			if (len(img.Tables) > 0) != fromManifest {
				continue
			}
			for _, r := range pick(img, refs[i], warn) {
				if fetching[r.desc.Digest] {
					continue
				}
				// A size out of range is refused by fetchTable before any
				// request; only sizes that may be fetched count.
				if size := r.desc.Size; size > 0 && size <= MaxTableSize {
					if total+size > MaxTablesTotal {
						warn("%s: chunk table %s skipped: the tables would pass %d bytes in all", img.Dir, r.desc.Digest, int64(MaxTablesTotal))
						continue
					}
					total += size
				}
				fetching[r.desc.Digest] = true
				jobs = append(jobs, job{img, r})
			}
		}
	}
	found := make([]*Found, len(jobs))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for n, j := range jobs {
		g.Go(func() error {
			t, err := fetchTable(gctx, src, j.img, j.ref, warn)
			if err != nil || t == nil {
				return err
			}
			found[n] = &Found{Table: t, From: j.ref.from}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("look up chunk tables: %w", err)
	}
	var out []Found
	for _, f := range found {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out, warnings, nil
}

// MaxTablesTotal bounds the bytes of chunk tables one Find fetches.
const MaxTablesTotal = 256 << 20

// pick keeps the tables of refs worth fetching for img: one per table
// digest; of those naming the layer they cover, the first for each layer
// of img (one naming no layer of img is ignored); of those naming none, as
// many as layers are left without one.
func pick(img image.Image, refs []tableRef, warn func(string, ...any)) []tableRef {
	layers := map[string]bool{}
	for _, l := range img.Layers {
		layers[l.Digest.String()] = true
	}
	seen := map[digest.Digest]bool{}
	covered := map[string]bool{}
	var named, unnamed []tableRef
	for _, r := range refs {
		if seen[r.desc.Digest] {
			continue
		}
		seen[r.desc.Digest] = true
		of := r.desc.Annotations[image.AnnotationChunkTableOf]
		switch {
		case of == "":
			unnamed = append(unnamed, r)
		case !layers[of]:
			warn("%s: chunk table %s (in %s) is for %s, no layer of manifest %s; ignored", img.Dir, r.desc.Digest, r.from, of, img.Digest)
		case !covered[of]:
			covered[of] = true
			named = append(named, r)
		}
	}
	if left := len(layers) - len(covered); len(unnamed) > left {
		warn("%s: %d chunk tables name no layer, more than the %d layers without one; the rest are ignored", img.Dir, len(unnamed), left)
		unnamed = unnamed[:left]
	}
	return append(named, unnamed...)
}

// referrerTables lists the tables attached to manifest subject.
func referrerTables(ctx context.Context, src Source, subject digest.Digest, warn func(string, ...any)) ([]tableRef, error) {
	descs, err := src.Referrers(ctx, subject, image.ArtifactTypeChunkTables)
	if err != nil {
		return nil, err
	}
	var out []tableRef
	n := 0
	for _, d := range descs {
		if d.ArtifactType != "" && d.ArtifactType != image.ArtifactTypeChunkTables && d.ArtifactType != ocispec.MediaTypeEmptyJSON {
			continue // a registry that ignores the filter; one that reports the
			// empty config's type read only the config: the manifest says below
		}
		if n++; n > maxReferrers {
			warn("manifest %s: more than %d chunk-table referrers; the rest are ignored", subject, maxReferrers)
			break
		}
		if err := d.Digest.Validate(); err != nil {
			warn("manifest %s: a referrer with a malformed digest %q; ignored", subject, d.Digest)
			continue
		}
		raw, _, err := src.Manifest(ctx, d)
		if err != nil {
			warn("manifest %s: fetch referrer %s: %v; ignored", subject, d.Digest, err)
			continue
		}
		if d.Digest.Algorithm().FromBytes(raw) != d.Digest {
			warn("manifest %s: referrer %s: its bytes do not match its digest; ignored", subject, d.Digest)
			continue
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			warn("manifest %s: referrer %s: %v; ignored", subject, d.Digest, err)
			continue
		}
		if m.Subject == nil || m.Subject.Digest != subject {
			warn("referrer %s of manifest %s names another subject; ignored", d.Digest, subject)
			continue
		}
		at := m.ArtifactType
		if at == "" && m.Config.MediaType != "" {
			at = m.Config.MediaType
		}
		if at != image.ArtifactTypeChunkTables {
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
	refuse := func(err error) error {
		return fmt.Errorf("chunk table %s (in %s) %w: %w", r.desc.Digest, r.from, ErrRefused, err)
	}
	if r.desc.Size <= 0 || r.desc.Size > MaxTableSize {
		return nil, refuse(fmt.Errorf("its descriptor says %d bytes; a table has 1 to %d", r.desc.Size, MaxTableSize))
	}
	if err := r.desc.Digest.Validate(); err != nil {
		return nil, refuse(err)
	}
	raw, err := src.BlobUpTo(ctx, r.desc, r.desc.Size)
	if err != nil {
		warn("%s: fetch chunk table %s (in %s): %v; its layer has no table", img.Dir, r.desc.Digest, r.from, err)
		return nil, nil
	}
	if int64(len(raw)) != r.desc.Size || r.desc.Digest.Algorithm().FromBytes(raw) != r.desc.Digest {
		return nil, refuse(errors.New("its bytes do not match its descriptor"))
	}
	t, err := Parse(raw)
	if err != nil {
		return nil, refuse(err)
	}
	if of := r.desc.Annotations[image.AnnotationChunkTableOf]; of != "" && of != t.Blob.String() {
		return nil, refuse(fmt.Errorf("its descriptor says it covers %s, the table says %s", of, t.Blob))
	}
	for _, l := range img.Layers {
		if l.Digest == t.Blob {
			if err := t.Covers(l); err != nil {
				return nil, refuse(err)
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
