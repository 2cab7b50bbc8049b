package layout

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// testLayout builds an OCI image layout by hand, file by file, so that
// each test can break exactly one thing.
type testLayout struct {
	t     *testing.T
	dir   string
	index ocispec.Index
}

// newTestLayout starts a layout in a new directory: its oci-layout file
// and an empty index (written by write).
func newTestLayout(t *testing.T) *testLayout {
	t.Helper()
	l := &testLayout{t: t, dir: t.TempDir(), index: ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}}
	l.file(layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`))
	l.write()
	return l
}

// file writes rel (slash-separated) in the layout.
func (l *testLayout) file(rel string, data []byte) {
	l.t.Helper()
	p := filepath.Join(l.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// blobPath is the file of blob d.
func (l *testLayout) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// blob stores data as a blob of media type mt.
func (l *testLayout) blob(data []byte, mt string) ocispec.Descriptor {
	l.t.Helper()
	d := digest.FromBytes(data)
	l.file("blobs/sha256/"+d.Encoded(), data)
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
}

// json stores v as a JSON blob of media type mt.
func (l *testLayout) json(v any, mt string) ocispec.Descriptor {
	l.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.blob(raw, mt)
}

// osImage stores a seed-format OS image of the given layers (role ->
// content) for arch and returns its manifest's descriptor.
func (l *testLayout) osImage(arch string, layers map[string][]byte) ocispec.Descriptor {
	l.t.Helper()
	cfg := l.blob([]byte(`{"commandLine":"console=ttyS0"}`), image.MediaTypeSeedConfig)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: image.MediaTypeSeedArtifacts,
		Config: cfg, Annotations: map[string]string{"architecture": arch, "variant": "virtualization"}}
	for _, role := range []string{"kernel", "initramfs", "disk.img", "squashfs"} {
		if data, ok := layers[role]; ok {
			m.Layers = append(m.Layers, l.blob(data, "application/vnd.OpenKCM.image."+role))
		}
	}
	return l.json(m, ocispec.MediaTypeImageManifest)
}

// referrer stores an artifact manifest of artifactType whose subject is
// subject, with the given layers.
func (l *testLayout) referrer(subject ocispec.Descriptor, artifactType string, layers ...ocispec.Descriptor) ocispec.Descriptor {
	l.t.Helper()
	empty := l.blob([]byte("{}"), ocispec.MediaTypeEmptyJSON)
	if layers == nil {
		layers = []ocispec.Descriptor{empty}
	}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: empty, Layers: layers, Subject: &subject, Annotations: map[string]string{"test": artifactType}}
	return l.json(m, ocispec.MediaTypeImageManifest)
}

// indexOf stores an index of entries.
func (l *testLayout) indexOf(entries ...ocispec.Descriptor) ocispec.Descriptor {
	l.t.Helper()
	return l.json(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}, ocispec.MediaTypeImageIndex)
}

// entry lists d in index.json, tagged tag ("" for none), and rewrites it.
func (l *testLayout) entry(d ocispec.Descriptor, tag string) {
	l.t.Helper()
	if tag != "" {
		d.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	}
	l.index.Manifests = append(l.index.Manifests, d)
	l.write()
}

// write writes index.json.
func (l *testLayout) write() {
	l.t.Helper()
	raw, err := json.Marshal(l.index)
	if err != nil {
		l.t.Fatal(err)
	}
	l.file(indexFile, raw)
}

// open opens the layout with ref s (a reference without "oci:").
func (l *testLayout) open(s string) (*Layout, error) {
	l.t.Helper()
	ref, err := ParseRef(s)
	if err != nil {
		return nil, err
	}
	lay, err := Open(context.Background(), ref, Options{})
	if err == nil {
		l.t.Cleanup(func() { lay.Close() })
	}
	return lay, err
}

// mustOpen is open that must succeed.
func (l *testLayout) mustOpen(s string) *Layout {
	l.t.Helper()
	lay, err := l.open(s)
	if err != nil {
		l.t.Fatal(err)
	}
	return lay
}
