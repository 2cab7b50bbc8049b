package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// errMissing is what fakeFetcher returns for a digest it does not hold.
var errMissing = errors.New("fake fetcher: no such digest")

// served is one stored document: its bytes and the media type a registry
// would serve it with.
type served struct {
	raw []byte
	mt  string
}

// fakeFetcher is an in-memory Fetcher: documents and blobs keyed by the
// digest of their bytes (go-digest FromBytes).
type fakeFetcher struct {
	docs  map[digest.Digest]served
	blobs map[digest.Digest][]byte
	// override, when set, maps a digest to bytes served instead of the real
	// ones (for digest-mismatch tests).
	override map[digest.Digest][]byte
	// fallback, when set, is served by Manifest for any unknown digest.
	fallback  *served
	manifests int // Manifest calls
	blobCalls int // Blob calls
}

func newFake() *fakeFetcher {
	return &fakeFetcher{docs: map[digest.Digest]served{}, blobs: map[digest.Digest][]byte{}, override: map[digest.Digest][]byte{}}
}

func (f *fakeFetcher) Manifest(ctx context.Context, d ocispec.Descriptor) ([]byte, string, error) {
	f.manifests++
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if raw, ok := f.override[d.Digest]; ok {
		return raw, f.docs[d.Digest].mt, nil
	}
	s, ok := f.docs[d.Digest]
	if !ok {
		if f.fallback != nil {
			return f.fallback.raw, f.fallback.mt, nil
		}
		return nil, "", fmt.Errorf("manifest %s: %w", d.Digest, errMissing)
	}
	return s.raw, s.mt, nil
}

func (f *fakeFetcher) Blob(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	f.blobCalls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if raw, ok := f.override[d.Digest]; ok {
		return raw, nil
	}
	b, ok := f.blobs[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, errMissing)
	}
	return b, nil
}

// addDoc registers raw as a document served as mt and returns its
// descriptor (media type mt, size and digest of raw).
func (f *fakeFetcher) addDoc(mt string, raw []byte) ocispec.Descriptor {
	d := digest.FromBytes(raw)
	f.docs[d] = served{raw: raw, mt: mt}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}
}

// addBlob registers a blob (a config) and returns its descriptor.
func (f *fakeFetcher) addBlob(mt string, raw []byte) ocispec.Descriptor {
	d := digest.FromBytes(raw)
	f.blobs[d] = raw
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}
}

// mustJSON marshals v; maps marshal with sorted keys, so the bytes are
// deterministic.
func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal: %v", err)
	}
	return raw
}

// manifestSpec describes a manifest to build. Empty fields are left out of
// the JSON entirely (an IronCore manifest has no "mediaType").
type manifestSpec struct {
	MediaType    string
	ArtifactType string
	Config       *ocispec.Descriptor
	Layers       []ocispec.Descriptor
	Annotations  map[string]string
}

func (m manifestSpec) json(tb testing.TB) []byte {
	tb.Helper()
	doc := map[string]any{"schemaVersion": 2}
	if m.MediaType != "" {
		doc["mediaType"] = m.MediaType
	}
	if m.ArtifactType != "" {
		doc["artifactType"] = m.ArtifactType
	}
	if m.Config != nil {
		doc["config"] = m.Config
	}
	if m.Layers != nil {
		doc["layers"] = m.Layers
	}
	if m.Annotations != nil {
		doc["annotations"] = m.Annotations
	}
	return mustJSON(tb, doc)
}

// addManifest builds m, registers it as a document served as servedAs, and
// returns the descriptor (with media type servedAs) and the exact bytes.
func (f *fakeFetcher) addManifest(tb testing.TB, servedAs string, m manifestSpec) (ocispec.Descriptor, []byte) {
	tb.Helper()
	raw := m.json(tb)
	return f.addDoc(servedAs, raw), raw
}

// indexJSON builds an index (or Docker list) document.
func indexJSON(tb testing.TB, mediaType string, entries []ocispec.Descriptor) []byte {
	tb.Helper()
	doc := map[string]any{"schemaVersion": 2, "manifests": entries}
	if mediaType != "" {
		doc["mediaType"] = mediaType
	}
	return mustJSON(tb, doc)
}

// addIndex builds and registers an index and returns its descriptor and bytes.
func (f *fakeFetcher) addIndex(tb testing.TB, mediaType string, entries []ocispec.Descriptor) (ocispec.Descriptor, []byte) {
	tb.Helper()
	raw := indexJSON(tb, mediaType, entries)
	return f.addDoc(mediaType, raw), raw
}

// entry is an index entry for d with a platform (nil when os and arch are
// both empty) and annotations.
func entry(d ocispec.Descriptor, os, arch string, annotations map[string]string) ocispec.Descriptor {
	if os != "" || arch != "" {
		d.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	}
	d.Annotations = annotations
	return d
}

// layer is a layer descriptor; its digest is derived from the media type and
// a seed so that different layers have different digests. Layers are never
// fetched by Resolve.
func layer(mt string, size int64, seed string, annotations map[string]string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString("layer " + mt + " " + seed), Size: size, Annotations: annotations}
}

func title(s string) map[string]string { return map[string]string{annotationTitle: s} }

// topOf makes the Top for raw served as mt.
func topOf(raw []byte, mt string) Top {
	return Top{Digest: digest.FromBytes(raw), MediaType: mt, Raw: raw}
}

// checkTreeInvariants asserts what must hold for any tree Resolve returns:
// every path element is a SafeName of printable runes, paths are unique,
// no file is also a directory, role names belong to their role, sizes are
// sane, and in-memory files match their size.
func checkTreeInvariants(tb testing.TB, t *Tree) {
	tb.Helper()
	if t == nil {
		tb.Fatalf("nil tree without an error")
	}
	if len(t.Files) == 0 {
		tb.Fatalf("tree without files")
	}
	paths := map[string]bool{}
	dirs := map[string]bool{}
	for i, f := range t.Files {
		if i > 0 && t.Files[i-1].Path >= f.Path {
			tb.Errorf("files not sorted and unique: %q then %q", t.Files[i-1].Path, f.Path)
		}
		if paths[f.Path] {
			tb.Errorf("duplicate path %q", f.Path)
		}
		paths[f.Path] = true
		elems := strings.Split(f.Path, "/")
		for j, e := range elems {
			if !SafeName(e) {
				tb.Errorf("path %q: element %q is not a SafeName", f.Path, e)
			}
			namePrintable(tb, fmt.Sprintf("element of %q", f.Path), e)
			if e == ".." || e == "." {
				tb.Errorf("path %q has a %q element", f.Path, e)
			}
			if j < len(elems)-1 {
				dirs[strings.Join(elems[:j+1], "/")] = true
			}
		}
		if f.Size < 0 || f.Size > MaxLayerSize {
			tb.Errorf("path %q: size %d", f.Path, f.Size)
		}
		if f.Lazy() {
			if err := f.Digest.Validate(); err != nil {
				tb.Errorf("lazy file %q has a bad digest %q: %v", f.Path, f.Digest, err)
			}
		} else if int64(len(f.Data)) != f.Size {
			tb.Errorf("path %q: %d bytes of data, size %d", f.Path, len(f.Data), f.Size)
		}
	}
	for d := range dirs {
		if paths[d] {
			tb.Errorf("%q is both a file and a directory", d)
		}
	}
	// Role names win: where a role has files, the role's own name is one
	// of them, never a layer of unknown type that took it first.
	roles := map[string]Role{}
	for _, f := range t.Files {
		roles[f.Path] = f.Role
	}
	for _, f := range t.Files {
		if name := f.Role.FileName(); name != "" {
			own := path.Join(path.Dir(f.Path), name)
			if roles[own] != f.Role {
				tb.Errorf("%s is a %s, but %s is %q", f.Path, f.Role, own, roles[own])
			}
		}
	}
}

// paths lists the paths of a tree's files.
func paths(t *Tree) []string {
	var out []string
	for _, f := range t.Files {
		out = append(out, f.Path)
	}
	return out
}

// file returns the file at p, failing the test when there is none.
func file(tb testing.TB, t *Tree, p string) File {
	tb.Helper()
	for _, f := range t.Files {
		if f.Path == p {
			return f
		}
	}
	tb.Fatalf("no file %q in %q", p, paths(t))
	return File{}
}
