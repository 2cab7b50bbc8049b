package publish

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

func entry(name, arch, variant string) ocispec.Descriptor {
	e := ocispec.Descriptor{MediaType: image.MediaTypeOCIManifest, Digest: digest.FromString(name), Size: 1}
	if arch != "" {
		e.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
	}
	if variant != "" {
		e.Annotations = map[string]string{AnnotationVariant: variant}
	}
	return e
}

func TestMergeIndex(t *testing.T) {
	attest := ocispec.Descriptor{
		MediaType:   image.MediaTypeOCIManifest,
		Digest:      digest.FromString("attestation"),
		Platform:    &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{annotationReferenceDigest: digest.FromString("old-amd64").String()},
	}
	// Variants of entries without the annotation, as the manifests would say.
	manifestVariants := map[digest.Digest]string{digest.FromString("noann-amd64"): "virtualization"}
	variantOf := func(_ context.Context, e ocispec.Descriptor) (string, error) {
		if v := e.Annotations[AnnotationVariant]; v != "" {
			return v, nil
		}
		if v, ok := manifestVariants[e.Digest]; ok {
			return v, nil
		}
		return "default", nil
	}
	newEntry := entry("new", "amd64", "virtualization")
	key := platformKey{os: "linux", arch: "amd64", variant: "virtualization"}

	tests := []struct {
		name        string
		in          []ocispec.Descriptor
		want        []string
		wantRemoved []string
	}{
		{"empty", nil, []string{"new"}, nil},
		{"other arch kept", []ocispec.Descriptor{entry("arm", "arm64", "virtualization")}, []string{"arm", "new"}, nil},
		{"other variant kept", []ocispec.Descriptor{entry("metal", "amd64", "metal")}, []string{"metal", "new"}, nil},
		{"replaced in place, attestation dropped",
			[]ocispec.Descriptor{entry("old-amd64", "amd64", "virtualization"), entry("arm", "arm64", "virtualization"), attest},
			[]string{"new", "arm"}, []string{"old-amd64"}},
		{"variant from the manifest", []ocispec.Descriptor{entry("noann-amd64", "amd64", "")}, []string{"new"}, []string{"noann-amd64"}},
		{"no annotation means default", []ocispec.Descriptor{entry("plain", "amd64", "")}, []string{"plain", "new"}, nil},
		{"case-insensitive", []ocispec.Descriptor{entry("upper", "AMD64", "Virtualization")}, []string{"new"}, []string{"upper"}},
		{"duplicates collapse", []ocispec.Descriptor{entry("a", "amd64", "virtualization"), entry("b", "amd64", "virtualization")}, []string{"new"}, []string{"a", "b"}},
		{"same manifest again", []ocispec.Descriptor{newEntry}, []string{"new"}, nil},
		{"no platform kept", []ocispec.Descriptor{entry("noplat", "", "")}, []string{"noplat", "new"}, nil},
	}
	names := map[digest.Digest]string{attest.Digest: "attestation"}
	for _, n := range []string{"new", "arm", "metal", "old-amd64", "noann-amd64", "plain", "upper", "a", "b", "noplat"} {
		names[digest.FromString(n)] = n
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, removed, err := mergeIndex(t.Context(), ocispec.Index{Manifests: tc.in}, newEntry, key, variantOf)
			if err != nil {
				t.Fatal(err)
			}
			var got, gotRemoved []string
			for _, e := range out.Manifests {
				got = append(got, names[e.Digest])
			}
			for _, d := range removed {
				gotRemoved = append(gotRemoved, names[d])
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(gotRemoved, tc.wantRemoved) {
				t.Errorf("got %v removed %v, want %v removed %v", got, gotRemoved, tc.want, tc.wantRemoved)
			}
		})
	}
}

func TestMergeIndexVariantError(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := mergeIndex(t.Context(), ocispec.Index{Manifests: []ocispec.Descriptor{entry("x", "amd64", "")}},
		entry("new", "amd64", "v"), platformKey{"linux", "amd64", "v"},
		func(context.Context, ocispec.Descriptor) (string, error) { return "", boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func TestIndexFromExisting(t *testing.T) {
	tests := []struct {
		name, raw, served string
		wantEntries       int
		wantArch          string
		wantErr           string
	}{
		{"oci index", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digest.FromString("a").String() + `","size":1,"platform":{"os":"linux","architecture":"s390x"}}]}`, image.MediaTypeOCIIndex, 1, "s390x", ""},
		{"docker list, served type only", `{"schemaVersion":2,"manifests":[]}`, image.MediaTypeDockerList, 0, "", ""},
		{"single manifest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"architecture":"riscv64","variant":"metal"}}`, image.MediaTypeOCIManifest, 1, "riscv64", ""},
		{"single manifest without architecture", `{"schemaVersion":2,"config":{}}`, image.MediaTypeOCIManifest, 0, "", "architecture"},
		{"not JSON", `<html>`, "text/html", 0, "", "parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idx, err := indexFromExisting([]byte(tc.raw), tc.served, digest.FromString(tc.raw))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(idx.Manifests) != tc.wantEntries {
				t.Fatalf("%d entries, want %d", len(idx.Manifests), tc.wantEntries)
			}
			if tc.wantArch != "" && idx.Manifests[0].Platform.Architecture != tc.wantArch {
				t.Errorf("architecture %q, want %q", idx.Manifests[0].Platform.Architecture, tc.wantArch)
			}
		})
	}
}
