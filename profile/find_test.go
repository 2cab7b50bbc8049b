package profile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// fakeSource holds manifests and blobs by digest, and the referrers of
// one subject.
type fakeSource struct {
	docs      map[digest.Digest][]byte
	referrers []ocispec.Descriptor
	blobGets  int
}

func (s *fakeSource) Manifest(ctx context.Context, d ocispec.Descriptor) ([]byte, string, error) {
	raw, ok := s.docs[d.Digest]
	if !ok {
		return nil, "", errors.New("not found")
	}
	return raw, ocispec.MediaTypeImageManifest, nil
}

func (s *fakeSource) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	return s.referrers, nil
}

func (s *fakeSource) BlobUpTo(ctx context.Context, d ocispec.Descriptor, limit int64) ([]byte, error) {
	s.blobGets++
	if d.Size > limit {
		return nil, errors.New("too large")
	}
	raw, ok := s.docs[d.Digest]
	if !ok {
		return nil, errors.New("not found")
	}
	return raw, nil
}

// attach adds a referrer of subject holding doc, shaped by edit.
func (s *fakeSource) attach(subject digest.Digest, doc []byte, created string, edit func(m *ocispec.Manifest)) digest.Digest {
	ld := digest.FromBytes(doc)
	s.docs[ld] = doc
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType, Config: ocispec.DescriptorEmptyJSON,
		Layers:  []ocispec.Descriptor{{MediaType: MediaType, Digest: ld, Size: int64(len(doc))}},
		Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject, Size: 100}}
	if edit != nil {
		edit(&m)
	}
	raw, _ := json.Marshal(m)
	d := digest.FromBytes(raw)
	s.docs[d] = raw
	s.referrers = append(s.referrers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(raw)),
		ArtifactType: m.ArtifactType, Annotations: map[string]string{AnnotationCreated: created}})
	return d
}

func encode(entries []Entry) []byte {
	var b bytes.Buffer
	_ = Encode(&b, entries)
	return b.Bytes()
}

func TestFind(t *testing.T) {
	layer := digest.FromString("disk")
	img := image.Image{Digest: digest.FromString("manifest"), Dir: "amd64/x", Layers: []ocispec.Descriptor{{Digest: layer, Size: 1000}}}
	good := []Entry{{Digest: layer, Off: 10, Len: 20, AtMs: 1}}
	ctx := context.Background()

	s := &fakeSource{docs: map[digest.Digest][]byte{}}
	if f, err := Find(ctx, s, img); f != nil || err != nil {
		t.Fatalf("no referrers: %v, %v", f, err)
	}
	old := s.attach(img.Digest, encode([]Entry{{Digest: layer, Off: 0, Len: 1}}), "2026-01-01T00:00:00Z", nil)
	newer := s.attach(img.Digest, encode(good), "2026-06-01T00:00:00Z", nil)
	s.attach(img.Digest, encode(good), "2025-01-01T00:00:00Z", nil)
	f, err := Find(ctx, s, img)
	if err != nil || f == nil || f.Referrer != newer || len(f.Entries) != 1 || f.Entries[0] != good[0] {
		t.Fatalf("three profiles: %+v, %v; want the newest, %s (not %s)", f, err, newer, old)
	}

	for _, c := range []struct {
		name string
		doc  []byte
		edit func(m *ocispec.Manifest)
		want string // "" for no profile, no error
	}{
		{"another subject", encode(good), func(m *ocispec.Manifest) { m.Subject.Digest = digest.FromString("other") }, "another subject"},
		{"another artifact type", encode(good), func(m *ocispec.Manifest) { m.ArtifactType = "application/vnd.example.sbom" }, ""},
		{"no profile layer", encode(good), func(m *ocispec.Manifest) { m.Layers[0].MediaType = "application/octet-stream" }, "no layer of type"},
		{"oversized layer", encode(good), func(m *ocispec.Manifest) { m.Layers[0].Size = MaxSize + 1 }, "at most"},
		{"layer digest lies", encode(good), func(m *ocispec.Manifest) { m.Layers[0].Size-- }, "does not match its descriptor"},
		{"past the end", encode([]Entry{{Digest: layer, Off: 999, Len: 2}}), nil, "entry 0: not in the image: bytes 999-1000"},
		{"unknown layer", encode([]Entry{{Digest: layer, Off: 0, Len: 1}, {Digest: digest.FromString("x"), Off: 0, Len: 1}}), nil, "entry 1: not in the image"},
		{"malformed", []byte(`[{"digest":`), nil, "invalid boot profile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &fakeSource{docs: map[digest.Digest][]byte{}}
			s.attach(img.Digest, c.doc, "2026-01-01T00:00:00Z", c.edit)
			f, err := Find(ctx, s, img)
			switch {
			case c.want == "" && (f != nil || err != nil):
				t.Fatalf("got %+v, %v; want no profile", f, err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %+v, %v; want ErrRefused saying %q", f, err, c.want)
			}
		})
	}

	// A referrer that reports no artifactType and is not a profile (a
	// registry that reads only the config) is passed over.
	s = &fakeSource{docs: map[digest.Digest][]byte{}}
	want := s.attach(img.Digest, encode(good), "2026-01-01T00:00:00Z", nil)
	s.attach(img.Digest, []byte("tables"), "2027-01-01T00:00:00Z", func(m *ocispec.Manifest) { m.ArtifactType = image.ArtifactTypeChunkTables })
	s.referrers[1].ArtifactType = ""
	if f, err := Find(ctx, s, img); err != nil || f == nil || f.Referrer != want {
		t.Fatalf("a newer referrer of another type that does not say so: %+v, %v; want %s", f, err, want)
	}

	// A listing of many referrers, the newest listed last (a fallback tag
	// lists by digest): the newest is found, and one profile fetched.
	s = &fakeSource{docs: map[digest.Digest][]byte{}}
	var newest digest.Digest
	for i := 0; i < maxReferrers+5; i++ {
		newest = s.attach(img.Digest, encode(good), fmt.Sprintf("2026-01-01T00:00:%02dZ", i), nil)
	}
	if f, err := Find(ctx, s, img); err != nil || f == nil || f.Referrer != newest || s.blobGets != 1 {
		t.Fatalf("many referrers: %+v, %v, %d blob fetches; want the newest, %s, fetched alone", f, err, s.blobGets, newest)
	}
}
