package image

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// safeByDefinition restates SafeName's contract independently of its code.
func safeByDefinition(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r == '/' || r == '\\' || !printableByDefinition(r) })
}

// printableByDefinition restates PrintableRune: letters, marks, numbers,
// punctuation, symbols and the ASCII space; never a control or format
// character or another space.
func printableByDefinition(r rune) bool {
	if r == ' ' {
		return true
	}
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zs, unicode.Zl, unicode.Zp) {
		return false
	}
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// namePrintable fails tb unless every rune of name is printable by
// definition: the mount shows a name as inspect prints it.
func namePrintable(tb testing.TB, what, name string) {
	tb.Helper()
	if !utf8.ValidString(name) {
		tb.Fatalf("%s = %q: invalid UTF-8", what, name)
	}
	for _, r := range name {
		if !printableByDefinition(r) || !PrintableRune(r) {
			tb.Fatalf("%s = %q holds %U, which is not printable", what, name, r)
		}
	}
}

// FuzzNames checks the naming rules on any strings: SafeName agrees with
// its definition; safeElement and unknownLayerName always give a SafeName
// of printable runes only (safeElement idempotent, keeping names that are
// already safe); and a nameSet, fed names the way Resolve feeds it, hands
// out unique printable SafeNames, exactly the ones the naive search would.
func FuzzNames(f *testing.F) {
	for _, s := range []struct {
		a, b, c string
		order   []byte
	}{
		{"disk.img", "kernel", "../etc/passwd", []byte{0, 0, 0, 1, 1, 2, 3, 3}},
		{".hidden", "x\x00y", "\x1b[31m", []byte{0, 0, 1, 2, 3}},
		{strings.Repeat("a", 255), strings.Repeat("é", 128), "a." + strings.Repeat("e", 253), []byte{0, 0, 0, 1, 1, 2, 2, 2}},
		{"index.json", "manifest.json", "manifest-2.json", []byte{1, 1, 2, 1, 3}},
		{"", ".", "..", []byte{0, 1, 2, 0, 1, 2}},
		{"a\uFFFDb", "\xff\xfe", "c:\\windows", []byte{0, 1, 2}},
		{"\u202egpj.exe", "kernel\u200b", "\ufeff\u2066x\u2069", []byte{0, 1, 2, 3}},
		{"no\u00a0break", "em\u2003space", "cafe\u0301", []byte{0, 1, 2}},
	} {
		f.Add(s.a, s.b, s.c, s.order)
	}
	dg := digest.FromString("fuzz layer")
	f.Fuzz(func(t *testing.T, a, b, c string, order []byte) {
		for _, s := range []string{a, b, c} {
			if got, want := SafeName(s), safeByDefinition(s); got != want {
				t.Fatalf("SafeName(%q) = %v, definition says %v", s, got, want)
			}
			e := safeElement(s, "fallback")
			if !SafeName(e) || len(e) > maxNameLen-8 {
				t.Fatalf("safeElement(%q) = %q (%d bytes): not a SafeName with room for a suffix", s, e, len(e))
			}
			namePrintable(t, fmt.Sprintf("safeElement(%q)", s), e)
			if again := safeElement(e, "fallback"); again != e {
				t.Fatalf("safeElement not idempotent: %q -> %q -> %q", s, e, again)
			}
			if SafeName(s) && len(s) <= maxNameLen-8 && !strings.ContainsRune(s, utf8.RuneError) && e != s {
				t.Fatalf("safeElement(%q) = %q: changed a safe name", s, e)
			}
			if n := unknownLayerName(s, dg); !SafeName(n) || (SafeName(s) && n != s) {
				t.Fatalf("unknownLayerName(%q) = %q", s, n)
			}
			namePrintable(t, fmt.Sprintf("unknownLayerName(%q)", s), unknownLayerName(s, dg))
		}
		if len(order) > 64 {
			order = order[:64]
		}
		names := [3]string{unknownLayerName(a, dg), unknownLayerName(b, dg), unknownLayerName(c, dg)}
		s := nameSet{}
		naive := map[string]bool{}
		seen := map[string]bool{}
		last := names[0]
		for _, o := range order {
			n := last // 3: claim the last name handed out, as a title may
			if o%4 < 3 {
				n = names[o%4]
			}
			got, want := s.claim(n), claimNaive(naive, n)
			if got != want {
				t.Fatalf("claim(%q) = %q, the naive search gives %q", n, got, want)
			}
			if seen[got] || !SafeName(got) {
				t.Fatalf("claim(%q) = %q: handed out twice or not a SafeName", n, got)
			}
			namePrintable(t, fmt.Sprintf("claim(%q)", n), got)
			seen[got] = true
			last = got
		}
	})
}

// FuzzParsePlatform: a platform that parses prints back as its input, with
// no empty element.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "amd64", "linux//v8", "/amd64", "a/b/c/d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePlatform(s)
		if err != nil {
			return
		}
		if p.String() != s || p.OS == "" || p.Architecture == "" || strings.Contains(p.OS+p.Architecture+p.Variant, "/") {
			t.Fatalf("ParsePlatform(%q) = %+v, prints as %q", s, p, p)
		}
	})
}

// FuzzParseDocument checks parseDocument on any bytes and served media
// type: it never panics; what it accepts respects the limits (entries,
// layers, sizes, digests) and is an index or a manifest; its errors are
// one clean line (no control characters from the input).
func FuzzParseDocument(f *testing.F) {
	fx := newFuzzFixture()
	for _, d := range fx.docs {
		f.Add(d.raw, d.mt)
	}
	for _, s := range []struct{ raw, mt string }{
		{`{"schemaVersion":2,"manifests":[]}`, ""},
		{`{"schemaVersion":2,"manifests":null}`, MediaTypeOCIIndex},
		{`{"mediaType":"application/vnd.oci.image.index.v1+json","layers":[]}`, ""},
		{`{"manifests":[],"layers":[]}`, "application/x-unknown"},
		{`{"layers":[{"digest":"sha256:zz","size":1}]}`, MediaTypeOCIManifest},
		{`{"layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":-1}]}`, MediaTypeOCIManifest},
		{`{"layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":17592186044417}]}`, ""},
		{`{"layers":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":18446744073709551616}]}`, ""},
		{`{"config":{"digest":"sha256:` + strings.Repeat("b", 64) + `","size":"2"}}`, ""},
		{`{"layers":[{"mediaType":"\u001b[31m","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":0}]}`, ""},
		{`{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:` + strings.Repeat("c", 64) + `"}]}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{"null", ""},
		{"[]", ""},
		{"{\"layers\":[", MediaTypeOCIManifest},
		{"<html>\x00\x1b</html>", "text/html"},
	} {
		f.Add([]byte(s.raw), s.mt)
	}
	f.Fuzz(func(t *testing.T, raw []byte, mt string) {
		d, isIndex, err := parseDocument(raw, mt)
		if err != nil {
			noControl(t, err.Error())
			return
		}
		var descs []ocispec.Descriptor
		if isIndex {
			if len(d.Manifests) > MaxManifests {
				t.Fatalf("index with %d entries accepted", len(d.Manifests))
			}
			descs = d.Manifests
		} else {
			if d.Layers == nil && d.Config == nil {
				t.Fatalf("manifest with neither layers nor config accepted")
			}
			if len(d.Layers) > MaxLayers {
				t.Fatalf("manifest with %d layers accepted", len(d.Layers))
			}
			descs = d.Layers
			if d.Config != nil {
				descs = append(descs, *d.Config)
			}
		}
		for _, x := range descs {
			if x.Digest.Validate() != nil || x.Size < 0 || x.Size > MaxLayerSize {
				t.Fatalf("descriptor %s of size %d accepted", x.Digest, x.Size)
			}
		}
		// The same bytes decide the same way whatever the parse order.
		if _, again, err := parseDocument(raw, mt); err != nil || again != isIndex {
			t.Fatalf("second parse differs: %v %v", again, err)
		}
		_ = parseConfig(raw) // never panics on anything
	})
}

// FuzzResolveFields builds a well-formed index and manifest around fuzzed
// field values (media types, titles, annotations, platform, sizes, layer
// count), so that the fuzzer spends its time in Resolve's rules rather than
// in JSON syntax. Whatever the values, Resolve either fails with a clean
// one-line error or returns a tree that keeps every invariant.
func FuzzResolveFields(f *testing.F) {
	f.Add(MediaTypeSeedConfig, seedType+"kernel", "kernel", "virtualization", "linux", "amd64", int64(10), uint8(3), true, "linux/amd64")
	f.Add(MediaTypeIronCoreConfig, "application/x-unknown", "../../etc/passwd", "../..", "linux", "x/y", int64(0), uint8(5), true, "")
	f.Add("application/\x1b[31m", "text/plain\n", "a\x00b", "\x1b]0;t\x07", "\n", "index.json", int64(-1), uint8(2), false, "linux/index.json")
	f.Add("", "", "", "", "", "", int64(MaxLayerSize), uint8(1), true, "linux/arm64/v8")
	f.Add(MediaTypeSeedConfig, "application/x-unknown", "kernel", "v", "linux", "amd64", int64(1), uint8(3), false, "")
	f.Add(MediaTypeIronCoreConfig, "application/x-unknown", "cmdline", "v", "linux", "amd64", int64(1), uint8(1), false, "")
	f.Add(MediaTypeSeedConfig, "application/x-unknown", "\u202egpj.exe", "v\u200b", "linux", "amd\u206664", int64(1), uint8(4), true, "")
	f.Add(MediaTypeSeedConfig, seedType+"disk.img", strings.Repeat("é", 130), strings.Repeat("v", 300), "linux", strings.Repeat("a", 300), int64(MaxLayerSize+1), uint8(200), true, "x")
	f.Fuzz(func(t *testing.T, cfgType, layerType, title, variant, osName, arch string, size int64, n uint8, wrap bool, platform string) {
		fk := newFake()
		cfg := fk.addBlob(cfgType, []byte(`{"commandLine":"console=ttyS0"}`))
		ls := make([]ocispec.Descriptor, int(n)%40)
		for i := range ls {
			mt := layerType
			if i%2 == 1 {
				mt = seedType + "kernel"
			}
			ls[i] = layer(mt, size, string(rune('a'+i)), map[string]string{annotationTitle: title})
		}
		spec := manifestSpec{Config: &cfg, Layers: ls, Annotations: map[string]string{annotationVariant: variant, annotationArchitecture: arch}}
		d, raw := fk.addManifest(t, MediaTypeOCIManifest, spec)
		top := topOf(raw, MediaTypeOCIManifest)
		if wrap {
			e := d
			e.Platform = &ocispec.Platform{OS: osName, Architecture: arch}
			_, iraw := fk.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{e, e})
			top = topOf(iraw, MediaTypeOCIIndex)
		}
		var ps []Platform
		if p, err := ParsePlatform(platform); err == nil {
			ps = []Platform{p}
		}
		tree, err := Resolve(context.Background(), fk, top, ps)
		if err != nil {
			if tree != nil {
				t.Fatalf("tree and error %v", err)
			}
			noControl(t, err.Error())
			return
		}
		checkTreeInvariants(t, tree)
		for _, w := range tree.Warnings {
			noControl(t, w)
		}
		if _, err := json.Marshal(tree); err != nil {
			t.Fatalf("tree does not marshal: %v", err)
		}
	})
}
