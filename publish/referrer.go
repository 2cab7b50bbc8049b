package publish

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
)

// tableBlob is a chunk table ready to upload: its encoding and the layer it
// covers.
type tableBlob struct {
	raw   []byte
	layer digest.Digest
}

func newTableBlob(t *integrity.Table) tableBlob { return tableBlob{raw: t.Marshal(), layer: t.Blob} }

func (t tableBlob) descriptor() ocispec.Descriptor {
	return tableDescriptor(digest.FromBytes(t.raw), int64(len(t.raw)), t.layer)
}

// referrerBlob is one layer of a referrer: its bytes, its descriptor, and
// what it is (for errors).
type referrerBlob struct {
	raw  []byte
	desc ocispec.Descriptor
	what string
}

// tableBlobs are the layers of a chunk-table referrer.
func tableBlobs(tables []tableBlob) []referrerBlob {
	out := make([]referrerBlob, len(tables))
	for i, t := range tables {
		out[i] = referrerBlob{raw: t.raw, desc: t.descriptor(), what: "the chunk table of layer " + t.layer.String()}
	}
	return out
}

// emptyConfig is the config of a referrer: the OCI empty blob, {}.
var emptyConfig = []byte("{}")

// referrerJSON is the manifest that attaches blobs to subject: an OCI
// image manifest of artifactType, the empty config, the blobs as layers
// (for chunk tables: in the subject's layer order), annotations (none for
// chunk tables) and subject. It holds nothing else: the same blobs and
// annotations give the same digest, so publishing again changes nothing.
func referrerJSON(subject ocispec.Descriptor, artifactType string, blobs []referrerBlob, annotations map[string]string) []byte {
	cfg := ocispec.DescriptorEmptyJSON
	cfg.Data = nil // some registries refuse descriptors with data
	layers := make([]ocispec.Descriptor, len(blobs))
	for i, b := range blobs {
		layers[i] = b.desc
	}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       cfg,
		Layers:       layers,
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations:  annotations,
	}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m) // cannot fail: strings, numbers and maps of strings
	return b
}

// referrerPusher publishes referrers to one repository: chunk tables
// (AttachTables) and boot profiles (PushProfile) alike.
type referrerPusher struct {
	repo   name.Repository
	pusher *remote.Pusher
}

// newReferrerPusher connects as o says. The referrers tag fallback is on:
// on a registry without the referrers API, go-containerregistry adds each
// referrer to the index at the subject's sha256-<hex> tag.
func newReferrerPusher(repo name.Repository, o Options) (*referrerPusher, error) {
	ropts, err := remoteOptions(o)
	if err != nil {
		return nil, err
	}
	p, err := remote.NewPusher(append(ropts, remote.WithReferrersTagFallback(true))...)
	if err != nil {
		return nil, err
	}
	return &referrerPusher{repo: repo, pusher: p}, nil
}

// publish uploads the blobs and the empty config (those the registry
// lacks), then PUTs the referrer manifest (referrerJSON) by digest, and
// returns its digest. Nothing refers to a blob before it is there.
func (p *referrerPusher) publish(ctx context.Context, subject ocispec.Descriptor, artifactType string, blobs []referrerBlob, annotations map[string]string) (digest.Digest, error) {
	for _, b := range blobs {
		if err := p.pusher.Upload(ctx, p.repo, newBytesLayer(b.raw, b.desc.MediaType)); err != nil {
			return "", fmt.Errorf("upload %s to %s: %w", b.what, p.repo, classify(err))
		}
	}
	if err := p.pusher.Upload(ctx, p.repo, newBytesLayer(emptyConfig, ocispec.MediaTypeEmptyJSON)); err != nil {
		return "", fmt.Errorf("upload the empty config to %s: %w", p.repo, classify(err))
	}
	raw := referrerJSON(subject, artifactType, blobs, annotations)
	d := digest.FromBytes(raw)
	if err := p.pusher.Put(ctx, p.repo.Digest(d.String()), rawDocument{raw: raw, mediaType: ocispec.MediaTypeImageManifest}); err != nil {
		return "", fmt.Errorf("put %s referrer %s of manifest %s to %s: %w", artifactType, d, subject.Digest, p.repo, classify(err))
	}
	return d, nil
}

// chunkTablesArtifact is the artifactType of a chunk-table referrer.
const chunkTablesArtifact = image.ArtifactTypeChunkTables
