package publish

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
)

// AttachOptions describe one AttachTables: the image, and the connection
// (the fields as in Options).
type AttachOptions struct {
	// Reference is the image: a tag or a digest.
	Reference string
	// Platforms, when not empty, keeps only the index entries matching one.
	Platforms []image.Platform
	// Force builds and publishes tables for a manifest that already has a
	// chunk-table referrer.
	Force bool

	// Connection is how to reach the registry.
	Connection
	Logger *slog.Logger
	// Progress observes each layer as it streams (StepIndex); Blob.Path
	// is the layer's path in the mounted tree. Never called concurrently.
	Progress Progress
}

func (o AttachOptions) options() Options {
	return Options{Connection: o.Connection, Logger: o.Logger}
}

// Attached is what AttachTables did for one image manifest.
type Attached struct {
	Manifest digest.Digest
	Dir      string // its directory in the tree, <arch>/<variant>
	// Referrer is the referrer published; "" when Skipped says why not.
	Referrer digest.Digest
	Skipped  string
	// Tables is the number of chunk tables in the referrer (or found, when
	// skipped); Streamed the layer bytes read to build them.
	Tables   int
	Streamed int64
}

// plan is the tables built for one manifest, to publish.
type plan struct {
	subject ocispec.Descriptor
	tables  []tableBlob
}

// AttachTables builds the chunk tables of an image pushed by any tool and
// attaches them to each of its manifests as an OCI referrer (see
// referrerJSON), in two phases:
//
//  1. for each manifest of the tree: skip it when it lists tables itself or
//     already has a chunk-table referrer (unless Force); else stream each
//     layer larger than one piece once from the registry, building its
//     table, and check the table's blob digest is the layer's;
//  2. only once every table is built and checked: upload the tables and
//     PUT one referrer manifest per manifest.
//
// So a layer whose bytes do not match its digest fails the call before
// anything is published.
func AttachTables(ctx context.Context, o AttachOptions) ([]Attached, error) {
	log := o.options().logger()
	store, tree, err := o.resolve(ctx, o.Reference, o.Platforms, o.Logger)
	if err != nil {
		return nil, err
	}
	rep := &reporter{p: o.Progress}
	built := map[digest.Digest]tableBlob{} // a layer shared by manifests streams once
	var out []Attached
	var plans []*plan
	for _, img := range tree.Images {
		a := Attached{Manifest: img.Digest, Dir: img.Dir}
		if len(img.Tables) > 0 {
			a.Skipped, a.Tables = fmt.Sprintf("its manifest lists %d chunk tables, which a mount uses first", len(img.Tables)), len(img.Tables)
			out, plans = append(out, a), append(plans, nil)
			continue
		}
		if !o.Force {
			why, n, err := existingReferrer(ctx, store, img, log)
			if err != nil {
				return nil, err
			}
			if why != "" {
				a.Skipped, a.Tables = why, n
				out, plans = append(out, a), append(plans, nil)
				continue
			}
		}
		subject, err := subjectOf(tree, img)
		if err != nil {
			return nil, err
		}
		p := &plan{subject: subject}
		for _, l := range img.Layers {
			if integrity.PieceSizeFor(l.Size) >= l.Size {
				continue // one piece: its digest checks it
			}
			t, ok := built[l.Digest]
			if !ok {
				table, err := buildTable(ctx, store, l, layerPath(tree, img, l), rep)
				if err != nil {
					return nil, err
				}
				t = newTableBlob(table)
				built[l.Digest] = t
				a.Streamed += l.Size
			}
			p.tables = append(p.tables, t)
		}
		if len(p.tables) == 0 {
			a.Skipped = "no layer is larger than one piece: each is checked by its digest"
			p = nil
		}
		if p != nil {
			a.Tables = len(p.tables)
		}
		out, plans = append(out, a), append(plans, p)
	}

	var pusher *referrerPusher
	for i, p := range plans {
		if p == nil {
			continue
		}
		if pusher == nil {
			if pusher, err = newReferrerPusher(store.Reference().Context(), o.options()); err != nil {
				return nil, err
			}
		}
		if out[i].Referrer, err = pusher.publish(ctx, p.subject, chunkTablesArtifact, tableBlobs(p.tables), nil); err != nil {
			return nil, err
		}
		log.Debug("published chunk-table referrer", "manifest", p.subject.Digest, "referrer", out[i].Referrer, "tables", len(p.tables))
	}
	return out, nil
}

// existingReferrer says why img needs no new referrer: it has one whose
// tables Find accepts (with their number). A referrer that Find refuses
// is an error: a mount would refuse it too.
func existingReferrer(ctx context.Context, store *blobstore.Store, img image.Image, log *slog.Logger) (string, int, error) {
	// img lists no tables (those that do are skipped before), so Find
	// looks up its referrers, and only those.
	found, warnings, err := integrity.Find(ctx, store, []image.Image{img})
	if err != nil {
		return "", 0, fmt.Errorf("%s: its chunk-table referrer is refused (delete it, then run index again): %w", img.Dir, err)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if len(found) == 0 {
		return "", 0, nil // referrers of another shape, no table
	}
	var from []string
	for _, f := range found {
		if r := strings.TrimPrefix(f.From, "referrer "); !slices.Contains(from, r) {
			from = append(from, r)
		}
	}
	return fmt.Sprintf("it has a chunk-table referrer %s (--force builds it again)", strings.Join(from, ", ")), len(found), nil
}

// subjectOf is the descriptor of img's manifest, from the tree's
// manifest.json file.
func subjectOf(tree *image.Tree, img image.Image) (ocispec.Descriptor, error) {
	for _, f := range tree.Files {
		if f.Role == image.RoleManifest && f.Digest == img.Digest && strings.HasPrefix(f.Path, img.Dir+"/") {
			return ocispec.Descriptor{MediaType: firstNonEmpty(f.MediaType, image.MediaTypeOCIManifest), Digest: f.Digest, Size: f.Size}, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: manifest %s is not in the tree", img.Dir, img.Digest)
}

// layerPath is the path of layer l of img in the tree, for progress.
func layerPath(tree *image.Tree, img image.Image, l ocispec.Descriptor) string {
	for _, f := range tree.Files {
		if f.Digest == l.Digest && strings.HasPrefix(f.Path, img.Dir+"/") {
			return f.Path
		}
	}
	return img.Dir + "/" + l.Digest.String()
}
