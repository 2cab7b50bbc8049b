package image

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fuzzFixture is the fixed content the fuzz fetcher serves: two OS
// manifests, their configs and a nested index. Everything is built from
// constants, so the digests (and the corpus files that name them) are
// stable.
type fuzzFixture struct {
	docs  map[digest.Digest]served
	blobs map[digest.Digest][]byte
	seed  ocispec.Descriptor // seed-format manifest
	iron  ocispec.Descriptor // IronCore manifest with hostile layer titles
	inner ocispec.Descriptor // index of seed (arm64) and iron (no platform)
	// fallback is served for any digest the fixture does not hold, so the
	// digest check is exercised too.
	fallback served
}

func marshal(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return raw
}

func newFuzzFixture() *fuzzFixture {
	fx := &fuzzFixture{docs: map[digest.Digest]served{}, blobs: map[digest.Digest][]byte{}}
	blob := func(mt string, raw []byte) ocispec.Descriptor {
		d := digest.FromBytes(raw)
		fx.blobs[d] = raw
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}
	}
	doc := func(mt string, v any) ocispec.Descriptor {
		raw := marshal(v)
		d := digest.FromBytes(raw)
		fx.docs[d] = served{raw: raw, mt: mt}
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}
	}

	seedCfg := blob(MediaTypeSeedConfig, []byte(`{}`))
	var seedLs []ocispec.Descriptor
	for i, l := range seedLayers {
		seedLs = append(seedLs, layer(l.mt, int64(i+1), "fuzz", title(l.name)))
	}
	fx.seed = doc(MediaTypeSeedArtifacts, map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeSeedArtifacts, "config": seedCfg, "layers": seedLs,
		"annotations": map[string]string{"variant": "virtualization", "architecture": "amd64"},
	})

	ironCfg := blob(MediaTypeIronCoreConfig, []byte(`{"commandLine":"console=ttyS0 root=/dev/vda"}`))
	long := strings.Repeat("a", 255)
	fx.iron = doc(MediaTypeOCIManifest, map[string]any{
		"schemaVersion": 2, "config": ironCfg,
		"layers": []ocispec.Descriptor{
			layer(ironcoreType+"rootfs", 1<<30, "fuzz", nil),
			layer(ironcoreType+"kernel", 1<<20, "fuzz", nil),
			layer("application/x-unknown", 1, "u1", title("../etc")),
			layer("application/x-unknown", 2, "u2", title(long)),
			layer("application/x-unknown", 3, "u3", title(long)),
			layer("application/x-unknown", 4, "u4", title("manifest.json")),
			layer("application/x-unknown", 5, "u5", title("cmdline")),
		},
		"annotations": map[string]string{"variant": "../..", "architecture": "x/y"},
	})

	seedEntry := fx.seed
	seedEntry.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	fx.inner = doc(MediaTypeOCIIndex, map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
		"manifests": []ocispec.Descriptor{seedEntry, fx.iron},
	})
	fx.fallback = fx.docs[fx.seed.Digest]
	return fx
}

// fetcher is a fakeFetcher over the fixture's (read-only) maps.
func (fx *fuzzFixture) fetcher() *fakeFetcher {
	return &fakeFetcher{docs: fx.docs, blobs: fx.blobs, override: nil, fallback: &fx.fallback}
}

// fuzzSeeds are valid (and a few invalid) top documents for the corpus:
// bytes, the media type they are served with, a platform filter.
func (fx *fuzzFixture) fuzzSeeds() []struct {
	raw      []byte
	mt       string
	platform string
} {
	withPlatform := func(d ocispec.Descriptor, os, arch string) ocispec.Descriptor {
		d.Platform = &ocispec.Platform{OS: os, Architecture: arch}
		return d
	}
	top := marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
		"manifests": []ocispec.Descriptor{
			withPlatform(fx.seed, "linux", "amd64"),
			withPlatform(fx.iron, "linux", "arm64"),
			fx.inner,
			{MediaType: MediaTypeOCIManifest, Digest: fx.seed.Digest, Size: fx.seed.Size, Annotations: map[string]string{annotationDockerRefType: "attestation-manifest"}},
		},
	})
	list := marshal(map[string]any{
		"schemaVersion": 2,
		"manifests":     []ocispec.Descriptor{withPlatform(fx.seed, "linux", "index.json"), withPlatform(fx.seed, "linux", "index.json")},
	})
	return []struct {
		raw      []byte
		mt       string
		platform string
	}{
		{top, MediaTypeOCIIndex, ""},
		{top, MediaTypeOCIIndex, "linux/arm64"},
		{list, MediaTypeDockerList, ""},
		{fx.docs[fx.seed.Digest].raw, MediaTypeSeedArtifacts, "linux/amd64"},
		{fx.docs[fx.iron.Digest].raw, "", ""},
		{fx.docs[fx.inner.Digest].raw, MediaTypeOCIIndex, "linux/s390x"},
		{[]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:zz","size":-1}]}`), "", ""},
		{[]byte(`{`), "", ""},
	}
}

func FuzzResolve(f *testing.F) {
	fx := newFuzzFixture()
	for _, s := range fx.fuzzSeeds() {
		f.Add(s.raw, s.mt, s.platform)
	}
	f.Fuzz(func(t *testing.T, raw []byte, mt, platform string) {
		var ps []Platform
		if p, err := ParsePlatform(platform); err == nil {
			ps = []Platform{p}
		}
		top := Top{Digest: digest.FromBytes(raw), MediaType: mt, Raw: raw}
		tree, err := Resolve(context.Background(), fx.fetcher(), top, ps)
		if err != nil {
			if tree != nil {
				t.Fatalf("tree and error %v", err)
			}
			return
		}
		checkTreeInvariants(t, tree)
		if tree.Digest != top.Digest {
			t.Errorf("tree digest %s, want %s", tree.Digest, top.Digest)
		}
		for _, fl := range tree.Files {
			if fl.Path == "index.json" && !bytes.Equal(fl.Data, raw) {
				t.Errorf("index.json is not the top document byte for byte")
			}
			if fl.Role == RoleManifest {
				if s, ok := fx.docs[fl.Digest]; (!ok || !bytes.Equal(s.raw, fl.Data)) && !bytes.Equal(fl.Data, raw) {
					t.Errorf("%s: manifest.json is not the fetched document", fl.Path)
				}
			}
		}
	})
}

func TestFuzzSeedsResolve(t *testing.T) {
	// The valid corpus seeds resolve to trees that keep the invariants; this
	// runs in every `go test`, not only under -fuzz.
	fx := newFuzzFixture()
	for i, s := range fx.fuzzSeeds()[:5] {
		var ps []Platform
		if p, err := ParsePlatform(s.platform); err == nil {
			ps = []Platform{p}
		}
		tree, err := Resolve(context.Background(), fx.fetcher(), Top{Digest: digest.FromBytes(s.raw), MediaType: s.mt, Raw: s.raw}, ps)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		checkTreeInvariants(t, tree)
	}
}
