package publish

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// Result is what Push did.
type Result struct {
	// Reference pins the pushed index: "registry/repository@sha256:...".
	Reference string
	// Index is the digest of the index now at the tag.
	Index digest.Digest
	// Manifest is the digest of this platform's manifest.
	Manifest digest.Digest
	// Uploaded are the blobs sent (files, config, cmdline, chunk tables);
	// Skipped the ones the registry already had.
	Uploaded, Skipped []digest.Digest
	// Tables are the chunk tables the manifest lists, one per file larger
	// than one piece, in the order of the files.
	Tables []digest.Digest
	// Replaced are manifests of the same platform that the index listed
	// before and no longer does (only with AddToIndex).
	Replaced []digest.Digest
}

// uploadable is a layer that can tell whether its bytes were read.
type uploadable interface {
	v1.Layer
	uploaded() bool
}

// Push builds the manifest of one platform from o and pushes it, its blobs
// and the index to o.Reference, in this order:
//
//  1. validate o and open every file (nothing is contacted on a usage error);
//  2. hash every file, streaming, building its chunk table on the way;
//  3. with AddToIndex, fetch the index at the tag (none yet is fine);
//  4. upload each blob the registry does not have (HEAD, then upload);
//  5. PUT the manifest by digest, then the index at the tag.
//
// So a tag never points to an index whose manifests or blobs are missing.
func Push(ctx context.Context, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	tag, err := parseTag(o.Reference, o.PlainHTTP)
	if err != nil {
		return nil, err
	}
	files := o.Files.list()
	if err := checkFiles(files); err != nil {
		return nil, err
	}
	log := o.logger()
	format := o.Format.orDefault()
	rep := &reporter{p: o.Progress}

	blobs := make([]Blob, 0, len(files))
	var tables []chunkTable
	for _, rf := range files {
		b, t, err := hashFile(ctx, rf, format.LayerMediaType(rf.role), !o.NoChunkTables, rep)
		if err != nil {
			return nil, err
		}
		log.Debug("hashed", "role", b.Role, "path", b.Path, "digest", b.Digest, "size", b.Size)
		blobs = append(blobs, b)
		if t != nil {
			tables = append(tables, chunkTable{table: t, blob: b})
		}
	}

	reg, err := connect(tag, o)
	if err != nil {
		return nil, err
	}
	repo := tag.Context().Name()

	var existing *ocispec.Index
	if o.AddToIndex {
		raw, mt, err := reg.get(ctx, tag)
		switch {
		case isNotFound(err):
			log.Debug("nothing at the tag yet: a new index", "reference", tag.String())
		case err != nil:
			return nil, fmt.Errorf("fetch the existing index %s: %w", tag, classify(err))
		default:
			idx, err := indexFromExisting(raw, mt, digest.FromBytes(raw))
			if err != nil {
				return nil, fmt.Errorf("add to the index at %s: %w", tag, err)
			}
			existing = &idx
		}
	}

	res := &Result{}
	send := func(what string, l uploadable, d digest.Digest, size int64) error {
		err := reg.upload(ctx, l)
		rep.finish(err)
		if err != nil {
			return fmt.Errorf("upload %s (%s, %d bytes) to %s: %w", what, d, size, repo, classify(err))
		}
		if l.uploaded() {
			res.Uploaded = append(res.Uploaded, d)
			log.Debug("uploaded", "blob", what, "digest", d, "size", size)
		} else {
			res.Skipped = append(res.Skipped, d)
			log.Debug("already in the registry", "blob", what, "digest", d)
		}
		return nil
	}

	// Layers in manifest order: the files, with the cmdline layer after the
	// squashfs (as in the seed's example).
	var layers []ocispec.Descriptor
	cmdline := o.commandLine()
	addCmdline := func() error {
		if cmdline == "" || !format.cmdlineLayer() {
			return nil
		}
		mt := format.LayerMediaType(image.RoleCmdline)
		l := newBytesLayer([]byte(cmdline), mt)
		d := digest.FromBytes(l.data)
		if err := send("cmdline", l, d, int64(len(l.data))); err != nil {
			return err
		}
		layers = append(layers, descriptor(mt, d, int64(len(l.data)), image.RoleCmdline.FileName()))
		return nil
	}
	cmdlineDone := false
	for _, b := range blobs {
		if !cmdlineDone && (b.Role == image.RoleUKI || b.Role == image.RoleISO) {
			if err := addCmdline(); err != nil {
				return nil, err
			}
			cmdlineDone = true
		}
		l, err := newFileLayer(b, rep)
		if err != nil {
			return nil, err
		}
		if err := send(fmt.Sprintf("%s file %s", b.Role, b.Path), l, b.Digest, b.Size); err != nil {
			return nil, err
		}
		if !l.uploaded() {
			rep.exists(b)
		}
		layers = append(layers, layerDescriptor(b))
	}
	if !cmdlineDone {
		if err := addCmdline(); err != nil {
			return nil, err
		}
	}
	// The chunk tables come after every real layer, so that consumers
	// that take layers by position or type see the layers they always did.
	for _, ct := range tables {
		l := newBytesLayer(ct.table.Marshal(), image.MediaTypeChunkTable)
		d, size := digest.FromBytes(l.data), int64(len(l.data))
		if err := send(fmt.Sprintf("chunk table of %s file %s", ct.blob.Role, ct.blob.Path), l, d, size); err != nil {
			return nil, err
		}
		layers = append(layers, tableDescriptor(d, size, ct.blob.Digest))
		res.Tables = append(res.Tables, d)
		log.Debug("chunk table", "layer", ct.blob.Digest, "table", d, "pieces", ct.table.Pieces(), "piece_size", ct.table.PieceSize, "size", size)
	}

	cfg := newBytesLayer(configJSON(cmdline), format.ConfigMediaType())
	cfgDigest := digest.FromBytes(cfg.data)
	if err := send("config", cfg, cfgDigest, int64(len(cfg.data))); err != nil {
		return nil, err
	}

	manifest := manifestJSON(format, descriptor(cfg.mediaType, cfgDigest, int64(len(cfg.data)), ""), layers, map[string]string{
		AnnotationTitle:        o.title(tag.RepositoryStr()),
		AnnotationVariant:      o.variant(),
		AnnotationArchitecture: o.Architecture,
	})
	res.Manifest = digest.FromBytes(manifest)
	if err := reg.put(ctx, reg.digestRef(res.Manifest), manifest, image.MediaTypeOCIManifest); err != nil {
		return nil, fmt.Errorf("put manifest %s to %s: %w", res.Manifest, repo, classify(err))
	}
	log.Debug("put manifest", "digest", res.Manifest, "size", len(manifest))

	entry := ocispec.Descriptor{
		MediaType:    image.MediaTypeOCIManifest,
		ArtifactType: format.artifactType(),
		Digest:       res.Manifest,
		Size:         int64(len(manifest)),
		Platform:     &ocispec.Platform{OS: o.os(), Architecture: o.Architecture},
		Annotations:  map[string]string{AnnotationVariant: o.variant()},
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{entry}}
	if existing != nil {
		key := platformKey{os: o.os(), arch: o.Architecture, variant: o.variant()}
		idx, res.Replaced, err = mergeIndex(ctx, *existing, entry, key, reg.entryVariant)
		if err != nil {
			return nil, fmt.Errorf("add to the index at %s: %w", tag, err)
		}
	}
	index := indexJSON(idx)
	res.Index = digest.FromBytes(index)
	if err := reg.put(ctx, tag, index, image.MediaTypeOCIIndex); err != nil {
		return nil, fmt.Errorf("put index %s to %s: %w", res.Index, tag, classify(err))
	}
	log.Debug("put index", "reference", tag.String(), "digest", res.Index, "entries", len(idx.Manifests))
	res.Reference = repo + "@" + res.Index.String()
	return res, nil
}
