package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/layout"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// twin holds the same image, with a chunk table attached as a referrer,
// in a registry and in a layout, written blob by blob.
type twin struct {
	registryRef, layoutRef string
	disk                   []byte
	manifest               digest.Digest
}

func newTwin(t *testing.T) twin {
	t.Helper()
	ctx := context.Background()
	reg := registrytest.Start(t)
	dir := t.TempDir()
	const repo = "os/twin"
	put := func(data []byte, mt string) ocispec.Descriptor {
		t.Helper()
		d, err := registrytest.PushBlobBytes(ctx, reg.Host(), repo, data, mt)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "blobs", "sha256", d.Digest.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	putManifest := func(v any, tag string) ocispec.Descriptor {
		t.Helper()
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		d := put(raw, ocispec.MediaTypeImageManifest)
		if tag == "" {
			tag = d.Digest.String()
		}
		if _, err := registrytest.PutManifest(ctx, reg.Host(), repo, tag, ocispec.MediaTypeImageManifest, raw); err != nil {
			t.Fatal(err)
		}
		return d
	}
	disk := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	cfg := put([]byte(`{"commandLine":"console=ttyS0"}`), image.MediaTypeSeedConfig)
	layers := []ocispec.Descriptor{
		put([]byte("a kernel"), "application/vnd.OpenKCM.image.kernel"),
		put(disk, "application/vnd.OpenKCM.image.disk.img"),
	}
	img := putManifest(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: image.MediaTypeSeedArtifacts, Config: cfg, Layers: layers,
		Annotations: map[string]string{"architecture": "amd64", "variant": "virtualization"}}, "1.0")
	b := integrity.NewBuilder(digest.SHA256, integrity.DefaultPieceSize)
	b.Write(disk)
	tab := put(b.Table().Marshal(), image.MediaTypeChunkTable)
	tab.Annotations = map[string]string{image.AnnotationChunkTableOf: layers[1].Digest.String()}
	empty := put([]byte("{}"), ocispec.MediaTypeEmptyJSON)
	ref := putManifest(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: image.ArtifactTypeChunkTables, Config: empty, Layers: []ocispec.Descriptor{tab}, Subject: &img}, "")

	// The registry has no referrers API: the referrer is listed at the
	// tag-schema fallback tag, as a client that pushes one does.
	ref.ArtifactType = image.ArtifactTypeChunkTables
	fallback, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{ref}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registrytest.PutManifest(ctx, reg.Host(), repo, blobstore.FallbackTag(img.Digest), ocispec.MediaTypeImageIndex, fallback); err != nil {
		t.Fatal(err)
	}

	img.Annotations = map[string]string{ocispec.AnnotationRefName: "1.0"}
	raw, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{img, ref}})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`), "index.json": raw} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return twin{registryRef: reg.Host() + "/" + repo + ":1.0", layoutRef: LayoutPrefix + dir + ":1.0", disk: disk, manifest: img.Digest}
}

// TestSameImageFromBothSources opens one image from a registry and from a
// layout, through the one dispatch, and gets the same tree, the same bytes
// and the same chunk table.
func TestSameImageFromBothSources(t *testing.T) {
	tw := newTwin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type seen struct {
		files  []string
		disk   []byte
		tables []digest.Digest
	}
	var got []seen
	for _, ref := range []string{tw.registryRef, tw.layoutRef} {
		r, err := Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if r.Local() != strings.HasPrefix(ref, LayoutPrefix) {
			t.Fatalf("%s: Local() = %v", ref, r.Local())
		}
		src, err := r.Open(ctx, Options{Registry: blobstore.Options{PlainHTTP: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if info := src.Info(); info.Local != r.Local() || info.Name == "" {
			t.Fatalf("%s: info %+v", ref, info)
		}
		tree, err := src.Resolve(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var s seen
		for _, f := range tree.Files {
			s.files = append(s.files, f.Path+" "+f.Digest.String())
			if f.Role == image.RoleDisk {
				s.disk = make([]byte, f.Size)
				if err := src.ReadParts(ctx, f.Digest, [][]byte{s.disk[:1000], s.disk[1000:]}, 0, func(int) {}); err != nil {
					t.Fatalf("%s: %v", ref, err)
				}
			}
		}
		found, warnings, err := integrity.Find(ctx, src, tree.Images)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("%s: Find: %v %q", ref, err, warnings)
		}
		for _, f := range found {
			s.tables = append(s.tables, f.Table.Digest())
		}
		got = append(got, s)
	}
	reg, lay := got[0], got[1]
	if !slices.Equal(reg.files, lay.files) {
		t.Errorf("trees differ:\nregistry: %q\nlayout:   %q", reg.files, lay.files)
	}
	if !bytes.Equal(reg.disk, tw.disk) || !bytes.Equal(lay.disk, tw.disk) {
		t.Errorf("disk.img differs from what was pushed")
	}
	if len(reg.tables) != 1 || !slices.Equal(reg.tables, lay.tables) {
		t.Errorf("chunk tables: registry %v, layout %v; want the same one", reg.tables, lay.tables)
	}
}

func TestParseAndClassify(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		ref      string
		local    bool
		notFound bool
	}{
		{"registry.example.com/os/debian:13", false, false},
		{"localhost:5000/os/x@sha256:" + strings.Repeat("a", 64), false, false},
		{"oci:" + dir, true, false},
		{"oci:" + dir + ":1.0", true, false},
		{"oci:" + dir + "/missing:1.0", false, true},
	} {
		r, err := Parse(tc.ref)
		if tc.notFound {
			if !IsNotFound(err) || !strings.Contains(err.Error(), dir+"/missing") {
				t.Errorf("%s: %v, want not found naming the directory", tc.ref, err)
			}
			continue
		}
		if err != nil || r.Local() != tc.local || r.String() != tc.ref {
			t.Errorf("%s: %+v, %v", tc.ref, r, err)
		}
	}

	// A directory that is not a layout is bad input, not a lookup that
	// failed; so is a reference that names no single image.
	_, err := Open(context.Background(), "oci:"+dir, Options{})
	if !IsBadInput(err) || IsNotFound(err) || !errors.Is(err, layout.ErrInvalid) || !strings.Contains(err.Error(), "oci:"+dir) {
		t.Fatalf("an empty directory: %v, want bad input naming the reference", err)
	}
	if err := Writable("oci:" + dir); !errors.Is(err, ErrReadOnly) || !IsBadInput(err) {
		t.Fatalf("Writable(oci:...): %v, want ErrReadOnly", err)
	}
	if err := Writable("registry.example.com/os/x:1"); err != nil {
		t.Fatalf("Writable(registry): %v", err)
	}
	if !IsNotFound(blobstore.ErrNotFound) || !IsBadInput(layout.ErrAmbiguous) || IsBadInput(blobstore.ErrNotFound) {
		t.Fatal("classification")
	}
}
