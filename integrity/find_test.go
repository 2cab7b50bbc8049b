package integrity

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// memSource serves documents and blobs from memory and counts table
// fetches. Find runs against real registries in the blobstore and publish
// tests; this source puts in what a hostile registry would.
type memSource struct {
	blobs     map[digest.Digest][]byte
	referrers map[digest.Digest][]ocispec.Descriptor
	fail      map[digest.Digest]bool
	fetches   atomic.Int64
}

func (m *memSource) Manifest(_ context.Context, d ocispec.Descriptor) ([]byte, string, error) {
	b, ok := m.blobs[d.Digest]
	if !ok {
		return nil, "", errors.New("not found")
	}
	return b, ocispec.MediaTypeImageManifest, nil
}

func (m *memSource) Referrers(_ context.Context, subject digest.Digest, _ string) ([]ocispec.Descriptor, error) {
	return m.referrers[subject], nil
}

func (m *memSource) BlobUpTo(_ context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
	m.fetches.Add(1)
	if m.fail[d.Digest] {
		return nil, errors.New("connection reset")
	}
	b, ok := m.blobs[d.Digest]
	if !ok || int64(len(b)) > limit {
		return nil, errors.New("not found or too large")
	}
	return b, nil
}

func (m *memSource) add(b []byte) digest.Digest {
	d := digest.FromBytes(b)
	m.blobs[d] = b
	return d
}

// tableFor builds the table of data and stores it in m.
func (m *memSource) tableFor(data []byte) ocispec.Descriptor {
	b := NewBuilder(digest.SHA256, 4096)
	b.Write(data)
	raw := b.Table().Marshal()
	return ocispec.Descriptor{MediaType: image.MediaTypeChunkTable, Digest: m.add(raw), Size: int64(len(raw)),
		Annotations: map[string]string{image.AnnotationChunkTableOf: digest.FromBytes(data).String()}}
}

func TestFind(t *testing.T) {
	ctx := context.Background()
	layer := []byte(strings.Repeat("layer bytes ", 3000))
	other := []byte(strings.Repeat("other bytes ", 3000))
	ld := ocispec.Descriptor{Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	newSrc := func() *memSource {
		return &memSource{blobs: map[digest.Digest][]byte{}, referrers: map[digest.Digest][]ocispec.Descriptor{}, fail: map[digest.Digest]bool{}}
	}
	referrer := func(m *memSource, subject digest.Digest, tables ...ocispec.Descriptor) ocispec.Descriptor {
		raw, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: image.ArtifactTypeChunkTables,
			Config: ocispec.DescriptorEmptyJSON, Layers: tables, Subject: &ocispec.Descriptor{Digest: subject}})
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: image.ArtifactTypeChunkTables, Digest: m.add(raw), Size: int64(len(raw))}
	}

	t.Run("manifest tables win over referrers, whatever the order of the images", func(t *testing.T) {
		m := newSrc()
		tbl := m.tableFor(layer)
		withRef := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("a", 64)), Dir: "a", Layers: []ocispec.Descriptor{ld}}
		m.referrers[withRef.Digest] = []ocispec.Descriptor{referrer(m, withRef.Digest, tbl)}
		listed := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("b", 64)), Dir: "b", Layers: []ocispec.Descriptor{ld}, Tables: []ocispec.Descriptor{tbl}}
		for range 20 {
			found, _, err := Find(ctx, m, []image.Image{withRef, listed})
			if err != nil || len(found) != 1 || !strings.HasPrefix(found[0].From, "manifest ") {
				t.Fatalf("Find = %v, %v: want the manifest's table, fetched once", found, err)
			}
		}
	})
	t.Run("duplicates and tables for no layer are not fetched", func(t *testing.T) {
		m := newSrc()
		tbl := m.tableFor(layer)
		foreign := m.tableFor(other)
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("c", 64)), Dir: "c", Layers: []ocispec.Descriptor{ld}, Tables: []ocispec.Descriptor{tbl, tbl, tbl, foreign}}
		found, warnings, err := Find(ctx, m, []image.Image{img})
		if err != nil || len(found) != 1 {
			t.Fatalf("Find = %v, %v", found, err)
		}
		if n := m.fetches.Load(); n != 1 {
			t.Errorf("%d tables fetched, want 1", n)
		}
		if len(warnings) == 0 {
			t.Error("no warning for the table of another blob")
		}
	})
	t.Run("a table that cannot be fetched is a warning", func(t *testing.T) {
		m := newSrc()
		tbl := m.tableFor(layer)
		m.fail[tbl.Digest] = true
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("d", 64)), Dir: "d", Layers: []ocispec.Descriptor{ld}, Tables: []ocispec.Descriptor{tbl}}
		found, warnings, err := Find(ctx, m, []image.Image{img})
		if err != nil || len(found) != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "connection reset") {
			t.Fatalf("Find = %v, %v, %v: want no table and one warning", found, warnings, err)
		}
	})
	t.Run("a table of another size is refused", func(t *testing.T) {
		m := newSrc()
		tbl := m.tableFor(layer)
		short := ld
		short.Size--
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("e", 64)), Dir: "e", Layers: []ocispec.Descriptor{short}, Tables: []ocispec.Descriptor{tbl}}
		_, _, err := Find(ctx, m, []image.Image{img})
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("Find = %v, want ErrRefused", err)
		}
	})
	t.Run("a bad referrer does not hide a good one; another subject is ignored", func(t *testing.T) {
		m := newSrc()
		tbl := m.tableFor(layer)
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("f", 64)), Dir: "f", Layers: []ocispec.Descriptor{ld}}
		missing := ocispec.Descriptor{ArtifactType: image.ArtifactTypeChunkTables, Digest: digest.FromString("gone"), Size: 10}
		malformed := ocispec.Descriptor{ArtifactType: image.ArtifactTypeChunkTables, Digest: "sha256:../../x", Size: 10}
		elsewhere := referrer(m, digest.Digest("sha256:"+strings.Repeat("9", 64)), tbl)
		m.referrers[img.Digest] = []ocispec.Descriptor{missing, malformed, elsewhere, referrer(m, img.Digest, tbl)}
		found, warnings, err := Find(ctx, m, []image.Image{img})
		if err != nil || len(found) != 1 || !strings.HasPrefix(found[0].From, "referrer ") || len(warnings) != 3 {
			t.Fatalf("Find = %v, %q, %v: want the good referrer's table and 3 warnings", found, warnings, err)
		}
	})
	t.Run("two tables for one layer do not crowd out another layer's", func(t *testing.T) {
		m := newSrc()
		ld2 := ocispec.Descriptor{Digest: digest.FromBytes(other), Size: int64(len(other))}
		old := m.tableFor(layer)
		b := NewBuilder(digest.SHA256, 8192)
		b.Write(layer)
		raw := b.Table().Marshal()
		newer := ocispec.Descriptor{MediaType: image.MediaTypeChunkTable, Digest: m.add(raw), Size: int64(len(raw)), Annotations: old.Annotations}
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("7", 64)), Dir: "g", Layers: []ocispec.Descriptor{ld, ld2}}
		m.referrers[img.Digest] = []ocispec.Descriptor{referrer(m, img.Digest, old), referrer(m, img.Digest, newer, m.tableFor(other))}
		found, _, err := Find(ctx, m, []image.Image{img})
		if err != nil || len(found) != 2 || found[0].Table.Blob == found[1].Table.Blob {
			t.Fatalf("Find = %v, %v: want one table for each layer", found, err)
		}
	})
	t.Run("a descriptor claiming a huge table is refused before any request", func(t *testing.T) {
		m := newSrc()
		huge := ocispec.Descriptor{MediaType: image.MediaTypeChunkTable, Digest: digest.FromString("huge"), Size: 1 << 40}
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("8", 64)), Dir: "h", Layers: []ocispec.Descriptor{ld}, Tables: []ocispec.Descriptor{huge}}
		_, _, err := Find(ctx, m, []image.Image{img})
		if !errors.Is(err, ErrRefused) || m.fetches.Load() != 0 {
			t.Fatalf("Find = %v after %d fetches, want ErrRefused after none", err, m.fetches.Load())
		}
	})
	t.Run("a cancelled lookup is an error, not no tables", func(t *testing.T) {
		m := newSrc()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		img := image.Image{Digest: digest.Digest("sha256:" + strings.Repeat("6", 64)), Dir: "i", Layers: []ocispec.Descriptor{ld}, Tables: []ocispec.Descriptor{m.tableFor(layer)}}
		if _, _, err := Find(cctx, m, []image.Image{img}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Find with a cancelled context = %v, want context.Canceled", err)
		}
	})
}
