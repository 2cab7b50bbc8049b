package image

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// claimNaive is the obvious nameSet.claim: try -2, -3, ... from the start
// every time. claim must hand out exactly the same names, only faster.
func claimNaive(taken map[string]bool, name string) string {
	if !taken[name] {
		taken[name] = true
		return name
	}
	for i := 2; ; i++ {
		cand := suffixed(name, i)
		if !taken[cand] {
			taken[cand] = true
			return cand
		}
	}
}

// suffixed is the candidate claim tries for name with suffix i: claim on a
// set where only name is taken and the search starts at i. (The suffix
// rules, extension and truncation, are claim's; what claimNaive checks is
// the order in which candidates are tried.)
func suffixed(name string, i int) string {
	s := nameSet{}
	s.take(name)
	s[name] = i
	return s.claim(name)
}

func TestNameSetClaimIsLinear(t *testing.T) {
	// 10,000 layers of one role (the most a manifest may have) used to
	// cost 50 million look-ups: 30 s, minutes under -race.
	s := nameSet{}
	start := time.Now()
	for i := 1; i <= MaxLayers; i++ {
		want := "kernel"
		if i > 1 {
			want = fmt.Sprintf("kernel-%d", i)
		}
		if got := s.claim("kernel"); got != want {
			t.Fatalf("claim %d = %q, want %q", i, got, want)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("%d claims of one name took %s", MaxLayers, took)
	}
}

func TestNameSetClaimMatchesNaive(t *testing.T) {
	long := strings.Repeat("a", 255)
	seqs := [][]string{
		{"disk.img", "disk-2.img", "disk.img", "disk.img", "disk-3.img", "disk.img"},
		{"kernel", "kernel-2", "kernel-3", "kernel", "kernel", "kernel-4", "kernel"},
		{".cfg", ".cfg", ".cfg-2", ".cfg"},
		{long, long, strings.Repeat("a", 253) + "-2", long, long},
		{"a.tar.gz", "a.tar.gz", "a.tar-2.gz", "a.tar.gz"},
	}
	for i, seq := range seqs {
		s := nameSet{}
		naive := map[string]bool{}
		for j, n := range seq {
			got, want := s.claim(n), claimNaive(naive, n)
			if got != want {
				t.Errorf("sequence %d, claim %d (%q) = %q, naive gives %q", i, j, n, got, want)
			}
		}
	}
}

// noControl fails when an error message could carry control characters
// (terminal escapes, newlines) from the registry to the user's terminal.
func noControl(tb testing.TB, msg string) {
	tb.Helper()
	for _, r := range msg {
		if unicode.IsControl(r) {
			tb.Errorf("message holds control character %U: %q", r, msg)
			return
		}
	}
}

func TestResolveManyLayersOfOneRole(t *testing.T) {
	f := newFake()
	ls := make([]ocispec.Descriptor, MaxLayers)
	for i := range ls {
		ls[i] = layer(seedType+"kernel", 1, "same", nil)
	}
	cfg := f.addBlob(MediaTypeSeedConfig, []byte(`{}`))
	_, raw := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{Config: &cfg, Layers: ls, Annotations: virt()})
	start := time.Now()
	tree := mustResolve(t, f, topOf(raw, MediaTypeOCIManifest))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("resolving %d layers took %s", MaxLayers, took)
	}
	checkTreeInvariants(t, tree)
	if got, want := len(tree.Files), MaxLayers+2; got != want {
		t.Fatalf("%d files, want %d", got, want)
	}
	file(t, tree, "unknown/virtualization/kernel")
	file(t, tree, fmt.Sprintf("unknown/virtualization/kernel-%d", MaxLayers))
}

func TestResolveLimits(t *testing.T) {
	bigManifest := func(t *testing.T, f *fakeFetcher) ocispec.Descriptor {
		ls := make([]ocispec.Descriptor, MaxLayers)
		for i := range ls {
			ls[i] = layer(seedType+"disk.img", 1, fmt.Sprint(i), nil)
		}
		d, _ := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{Layers: ls})
		return d
	}
	tests := []struct {
		name  string
		build func(t *testing.T, f *fakeFetcher) Top
		want  []string
	}{
		{"one big manifest listed three times", func(t *testing.T, f *fakeFetcher) Top {
			d := bigManifest(t, f)
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
				entry(d, "linux", "amd64", nil), entry(d, "linux", "arm64", nil), entry(d, "linux", "s390x", nil),
			})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"index entry 1 (platform \"linux/arm64\")", fmt.Sprintf("limit of %d files", MaxFiles)}},
		{"documents adding up past the total limit", func(t *testing.T, f *fakeFetcher) Top {
			// Manifests just under MaxDocumentSize each, padded with an
			// annotation: every one is allowed, 17 of them are not.
			var es []ocispec.Descriptor
			for i := 0; i < 20; i++ {
				pad := strings.Repeat("x", MaxDocumentSize-1024)
				d, _ := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{
					Layers:      []ocispec.Descriptor{layer(seedType+"kernel", 1, "k", nil)},
					Annotations: map[string]string{"variant": fmt.Sprint(i), "pad": pad},
				})
				es = append(es, entry(d, "linux", "amd64", nil))
			}
			_, raw := f.addIndex(t, MediaTypeOCIIndex, es)
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"index entry 16 ", fmt.Sprintf("limit of %d bytes", MaxTotalDocumentSize)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			_, err := resolve(t, f, tt.build(t, f))
			if err == nil {
				t.Fatal("Resolve succeeded, want an error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	t.Run("one big manifest once is fine", func(t *testing.T) {
		f := newFake()
		d := bigManifest(t, f)
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(d, "linux", "amd64", nil)})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
		if got, want := len(tree.Files), 1+1+MaxLayers; got != want {
			t.Errorf("%d files, want %d", got, want)
		}
	})
}

func TestResolveErrorsSayWhere(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, f *fakeFetcher) Top
		want  []string
		is    error
	}{
		{"missing manifest in a nested index", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "ok", virt())
			gone := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("gone"), Size: 10}
			inner, _ := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil), entry(gone, "linux", "arm64", nil)})
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil), inner})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{`index entry 1 > 1 (platform "linux/arm64"): fetch manifest ` + digest.FromString("gone").String()}, errMissing},
		{"bad layer in the second entry", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "ok", virt())
			l := layer(seedType+"kernel", -1, "neg", nil)
			bad, _ := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{Layers: []ocispec.Descriptor{l}})
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil), entry(bad, "linux", "arm64", nil)})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{`index entry 1 (platform "linux/arm64"): parse manifest`, "layer 0", "negative size -1"}, nil},
		{"too deep names the chain", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "deep", virt())
			return topOf(nest(t, f, entry(img.desc, "linux", "amd64", nil), MaxIndexDepth+2), MediaTypeOCIIndex)
		}, []string{"index entry 0 > 0 > 0 > 0 > 0", fmt.Sprintf("nested more than %d deep", MaxIndexDepth)}, nil},
		{"empty index", func(t *testing.T, f *fakeFetcher) Top {
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"is not an OS image: the index lists no manifests"}, ErrNotOSImage},
		{"malformed top", func(t *testing.T, f *fakeFetcher) Top {
			return topOf([]byte(`{"layers":[`), MediaTypeOCIManifest)
		}, []string{"top document sha256:", "decode JSON"}, nil},
		{"hostile media types are quoted", func(t *testing.T, f *fakeFetcher) Top {
			c := f.addBlob("application/x-\x1b[2Jconfig\n", []byte(`{}`))
			_, raw := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{Config: &c, Layers: []ocispec.Descriptor{layer("text/\x1b]0;pwned\x07", 1, "l", nil)}})
			return topOf(raw, MediaTypeOCIManifest)
		}, []string{`"application/x-\x1b[2Jconfig\n"`, `"text/\x1b]0;pwned\a"`}, ErrNotOSImage},
		{"hostile reference types are quoted", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "x", nil)
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "", "", map[string]string{annotationDockerRefType: "sig\x1b[31m"})})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{`"sig\x1b[31m"`}, ErrNotOSImage},
		{"hostile platform in an error is quoted", func(t *testing.T, f *fakeFetcher) Top {
			gone := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("gone"), Size: 10}
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(gone, "linux\n", "\x1b[1m", nil)})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{`(platform "linux\n/\x1b[1m")`}, errMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			_, err := resolve(t, f, tt.build(t, f))
			if err == nil {
				t.Fatal("Resolve succeeded, want an error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			if tt.is != errMissing { // the fake fetcher's own text is not ours
				noControl(t, err.Error())
			}
		})
	}
}

func TestResolveThirdDuplicateIsNamedRight(t *testing.T) {
	f := newFake()
	var es []ocispec.Descriptor
	for i := 0; i < 3; i++ {
		img := addSeed(t, f, fmt.Sprint(i), virt())
		es = append(es, entry(img.desc, "linux", "amd64", nil))
	}
	_, raw := f.addIndex(t, MediaTypeOCIIndex, es)
	tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
	for _, d := range []string{"amd64/virtualization", "amd64/virtualization-2", "amd64/virtualization-3"} {
		file(t, tree, d+"/manifest.json")
	}
	want := []string{
		"two OS images for amd64/virtualization: this one is shown as amd64/virtualization-2",
		"two OS images for amd64/virtualization: this one is shown as amd64/virtualization-3",
	}
	if strings.Join(tree.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings %q, want %q", tree.Warnings, want)
	}
}

func TestResolveCanceledDuringManyLayers(t *testing.T) {
	// A cancelled context stops a walk over many entries at the next fetch.
	f := newFake()
	img := addSeed(t, f, "c", nil)
	es := make([]ocispec.Descriptor, MaxManifests)
	for i := range es {
		es[i] = entry(img.desc, "linux", fmt.Sprint("arch", i), nil)
	}
	_, raw := f.addIndex(t, MediaTypeOCIIndex, es)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Resolve(ctx, f, topOf(raw, MediaTypeOCIIndex), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve error = %v, want context.Canceled", err)
	}
	if f.manifests != 1 {
		t.Errorf("%d manifest fetches after cancel, want 1", f.manifests)
	}
}

func TestParseDocumentShapeBeatsServedType(t *testing.T) {
	h := strings.Repeat("a", 64)
	manifest := `{"schemaVersion":2,"config":{"mediaType":"` + MediaTypeIronCoreConfig + `","digest":"sha256:` + h + `","size":2},"layers":[]}`
	index := `{"schemaVersion":2,"manifests":[{"digest":"sha256:` + h + `","size":1}]}`
	tests := []struct {
		name, raw, served string
		wantIndex         bool
	}{
		{"manifest without mediaType served as an index", manifest, MediaTypeOCIIndex, false},
		{"manifest without mediaType served as a Docker list", manifest, MediaTypeDockerList, false},
		{"index without mediaType served as a manifest", index, MediaTypeOCIManifest, true},
		{"index without mediaType served as a Docker manifest", index, MediaTypeDockerManifest, true},
		{"own mediaType wins over the shape", `{"mediaType":"` + MediaTypeOCIIndex + `","layers":[]}`, MediaTypeOCIManifest, true},
		{"ambiguous shape: the served type decides", `{"manifests":[],"layers":[]}`, MediaTypeOCIIndex, true},
		{"ambiguous shape, manifest type", `{"manifests":[],"layers":[]}`, MediaTypeOCIManifest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, isIndex, err := parseDocument([]byte(tt.raw), tt.served)
			if err != nil {
				t.Fatal(err)
			}
			if isIndex != tt.wantIndex {
				t.Errorf("isIndex = %v, want %v", isIndex, tt.wantIndex)
			}
		})
	}
}
