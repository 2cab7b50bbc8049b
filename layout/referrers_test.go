package layout

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/profile"
)

// The layout is where integrity.Find and profile.Find look.
var (
	_ integrity.Source = (*Layout)(nil)
	_ profile.Source   = (*Layout)(nil)
	_ image.Fetcher    = (*Layout)(nil)
)

func TestReferrers(t *testing.T) {
	l := newTestLayout(t)
	img := l.osImage("amd64", map[string][]byte{"kernel": []byte("k")})
	other := l.osImage("arm64", map[string][]byte{"kernel": []byte("other")})
	tables := l.referrer(img, image.ArtifactTypeChunkTables)
	prof := l.referrer(img, "application/vnd.osimagefs.bootprofile.v1+json")
	ofOther := l.referrer(other, image.ArtifactTypeChunkTables)
	// An artifact typed by its config's media type only (no artifactType).
	cfg := l.blob([]byte("{}"), "application/vnd.example.sbom")
	byConfig := l.json(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}, Subject: &img}, ocispec.MediaTypeImageManifest)
	// One listed only inside a nested index.
	deep := l.referrer(img, "application/vnd.example.deep")
	// And one listed only by the fallback tag's index, with no subject
	// of its own (as the registry's fallback lists it, it is returned).
	viaTag := l.blob([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.tagged","digest":"`+cfg.Digest.String()+`","size":2},"layers":[]}`), ocispec.MediaTypeImageManifest)
	viaTag.ArtifactType = "application/vnd.example.tagged"

	l.entry(img, "1.0")
	l.entry(other, "2.0")
	l.entry(tables, "")
	l.entry(prof, "")
	l.entry(ofOther, "")
	l.entry(byConfig, "")
	l.entry(l.indexOf(l.indexOf(deep)), "")
	l.entry(l.indexOf(viaTag), "sha256-"+img.Digest.Encoded())
	lay := l.mustOpen(l.dir + ":1.0")
	ctx := context.Background()

	digests := func(ds []ocispec.Descriptor) []digest.Digest {
		var out []digest.Digest
		for _, d := range ds {
			out = append(out, d.Digest)
		}
		return out
	}
	for _, tc := range []struct {
		name         string
		subject      digest.Digest
		artifactType string
		want         []digest.Digest
	}{
		{"all of img", img.Digest, "", []digest.Digest{tables.Digest, prof.Digest, byConfig.Digest, viaTag.Digest, deep.Digest}},
		{"chunk tables of img", img.Digest, image.ArtifactTypeChunkTables, []digest.Digest{tables.Digest}},
		{"typed by its config", img.Digest, "application/vnd.example.sbom", []digest.Digest{byConfig.Digest}},
		{"listed by the fallback tag", img.Digest, "application/vnd.example.tagged", []digest.Digest{viaTag.Digest}},
		{"nested two deep", img.Digest, "application/vnd.example.deep", []digest.Digest{deep.Digest}},
		{"of the other image", other.Digest, "", []digest.Digest{ofOther.Digest}},
		{"of a manifest nobody refers to", tables.Digest, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lay.Referrers(ctx, tc.subject, tc.artifactType)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(digests(got), tc.want) {
				t.Fatalf("referrers %v, want %v", digests(got), tc.want)
			}
		})
	}

	t.Run("described as the referrers API describes them", func(t *testing.T) {
		got, err := lay.Referrers(ctx, img.Digest, "application/vnd.example.sbom")
		if err != nil || len(got) != 1 {
			t.Fatal(got, err)
		}
		if d := got[0]; d.ArtifactType != "application/vnd.example.sbom" || d.MediaType != ocispec.MediaTypeImageManifest || d.Size != byConfig.Size {
			t.Fatalf("descriptor %+v", d)
		}
		got, err = lay.Referrers(ctx, img.Digest, image.ArtifactTypeChunkTables)
		if err != nil || len(got) != 1 || got[0].Annotations["test"] != image.ArtifactTypeChunkTables {
			t.Fatalf("the manifest's annotations are not on its descriptor: %+v, %v", got, err)
		}
	})
	t.Run("a malformed subject", func(t *testing.T) {
		if _, err := lay.Referrers(ctx, "sha256:../x", ""); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("a cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := lay.Referrers(cctx, img.Digest, ""); err == nil {
			t.Fatal("no error")
		}
	})
}

// TestFindChunkTable finds a chunk table attached to an image in a layout,
// as a mount does: through integrity.Find, as for a registry.
func TestFindChunkTable(t *testing.T) {
	l := newTestLayout(t)
	disk := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	img := l.osImage("amd64", map[string][]byte{"disk.img": disk})
	b := integrity.NewBuilder(digest.SHA256, integrity.MinPieceSize)
	b.Write(disk)
	tab := b.Table()
	tabDesc := l.blob(tab.Marshal(), image.MediaTypeChunkTable)
	tabDesc.Annotations = map[string]string{image.AnnotationChunkTableOf: digest.FromBytes(disk).String()}
	l.entry(img, "1.0")
	l.entry(l.referrer(img, image.ArtifactTypeChunkTables, tabDesc), "")

	lay := l.mustOpen(l.dir + ":1.0")
	tree, err := lay.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found, warnings, err := integrity.Find(context.Background(), lay, tree.Images)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Find: %v, warnings %q", err, warnings)
	}
	if len(found) != 1 || found[0].Table.Blob != digest.FromBytes(disk) || found[0].From[:9] != "referrer " {
		t.Fatalf("found %+v, want the table as a referrer", found)
	}
}
