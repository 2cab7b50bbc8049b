package image

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	seedType          = "application/vnd.OpenKCM.image."
	ironcoreType      = "application/vnd.ironcore.image."
	cosignLayerType   = "application/vnd.dev.cosign.simplesigning.v1+json"
	ociConfigType     = "application/vnd.oci.image.config.v1+json"
	dockerConfigType  = "application/vnd.docker.container.image.v1+json"
	dockerLayerType   = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	ironcoreCmdline   = "console=ttyS0 root=/dev/vda"
	attestationRefKey = "vnd.docker.reference.type"
)

// seedLayers are the seven layer types of the seed format, in manifest
// order, with the file each becomes.
var seedLayers = []struct {
	mt   string
	name string
	role Role
}{
	{seedType + "disk.img", "disk.img", RoleDisk},
	{seedType + "kernel", "kernel", RoleKernel},
	{seedType + "initramfs", "initramfs", RoleInitramfs},
	{seedType + "squashfs", "root.squashfs", RoleSquashfs},
	{seedType + "cmdline", "cmdline", RoleCmdline},
	{seedType + "uki", "uki.efi", RoleUKI},
	{seedType + "iso", "image.iso", RoleISO},
}

// testImage is a manifest registered with a fakeFetcher, with what the tree
// should show for it.
type testImage struct {
	desc   ocispec.Descriptor // as an index entry would carry it (no platform)
	raw    []byte
	cfg    *ocispec.Descriptor
	cfgRaw []byte
	layers []ocispec.Descriptor
	names  []string // file name of each layer
}

// addSeed registers a seed-format manifest (all seven layer types, a seed
// config) annotated with annotations; seed makes its layers distinct.
func addSeed(tb testing.TB, f *fakeFetcher, seed string, annotations map[string]string) testImage {
	tb.Helper()
	cfgRaw := []byte(`{"seed":"` + seed + `"}`)
	cfg := f.addBlob(MediaTypeSeedConfig, cfgRaw)
	img := testImage{cfg: &cfg, cfgRaw: cfgRaw}
	for i, l := range seedLayers {
		img.layers = append(img.layers, layer(l.mt, int64(1000*(i+1)+len(seed)), seed, title(l.name)))
		img.names = append(img.names, l.name)
	}
	img.desc, img.raw = f.addManifest(tb, MediaTypeSeedArtifacts, manifestSpec{
		MediaType:   MediaTypeSeedArtifacts,
		Config:      img.cfg,
		Layers:      img.layers,
		Annotations: annotations,
	})
	return img
}

// wantFiles is what the tree shows for img in dir: manifest.json,
// config.json and one lazy file per layer, sorted by path.
func (img testImage) wantFiles(dir, platform string) []File {
	out := []File{{
		Path: dir + "/manifest.json", Role: RoleManifest, MediaType: manifestTypeOf(img.raw, img.desc.MediaType),
		Digest: img.desc.Digest, Size: int64(len(img.raw)), Data: img.raw, Platform: platform,
	}}
	if img.cfg != nil {
		out = append(out, File{
			Path: dir + "/config.json", Role: RoleConfig, MediaType: img.cfg.MediaType,
			Digest: img.cfg.Digest, Size: img.cfg.Size, Data: img.cfgRaw, Platform: platform,
		})
	}
	for i, l := range img.layers {
		out = append(out, File{
			Path: dir + "/" + img.names[i], Role: RoleOf(l.MediaType), MediaType: l.MediaType,
			Digest: l.Digest, Size: l.Size, Platform: platform,
		})
	}
	return out
}

// manifestTypeOf is the media type the tree gives manifest.json: the
// document's own mediaType, else the one it was referenced with.
func manifestTypeOf(raw []byte, referenced string) string {
	d, _, err := parseDocument(raw, "")
	if err == nil && d.MediaType != "" {
		return d.MediaType
	}
	return referenced
}

func sortFiles(fs []File) []File {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Path < fs[j].Path })
	return fs
}

// compareFiles fails with a per-file diff when got and want differ.
func compareFiles(t *testing.T, got, want []File) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	show := func(f File) string {
		data := "<lazy>"
		if f.Data != nil {
			data = fmt.Sprintf("%q", f.Data)
		}
		return fmt.Sprintf("%s role=%s mt=%s digest=%s size=%d platform=%q data=%s", f.Path, f.Role, f.MediaType, f.Digest, f.Size, f.Platform, data)
	}
	var g, w []string
	for _, f := range got {
		g = append(g, show(f))
	}
	for _, f := range want {
		w = append(w, show(f))
	}
	t.Errorf("files differ\n got:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
}

func resolve(t *testing.T, f *fakeFetcher, top Top, platforms ...string) (*Tree, error) {
	t.Helper()
	var ps []Platform
	for _, s := range platforms {
		p, err := ParsePlatform(s)
		if err != nil {
			t.Fatalf("ParsePlatform(%q): %v", s, err)
		}
		ps = append(ps, p)
	}
	tree, err := Resolve(context.Background(), f, top, ps)
	if err == nil {
		checkTreeInvariants(t, tree)
	} else if tree != nil {
		t.Errorf("Resolve returned a tree and an error: %v", err)
	}
	return tree, err
}

func mustResolve(t *testing.T, f *fakeFetcher, top Top, platforms ...string) *Tree {
	t.Helper()
	tree, err := resolve(t, f, top, platforms...)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return tree
}

func virt() map[string]string { return map[string]string{"variant": "virtualization"} }

func TestResolveSeedIndex(t *testing.T) {
	f := newFake()
	amd := addSeed(t, f, "amd64", virt())
	arm := addSeed(t, f, "arm64", virt())
	_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
		entry(amd.desc, "linux", "amd64", nil),
		entry(arm.desc, "linux", "arm64", nil),
	})
	top := topOf(raw, MediaTypeOCIIndex)
	tree := mustResolve(t, f, top)

	want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: top.Digest, Size: int64(len(raw)), Data: raw}}
	want = append(want, amd.wantFiles("amd64/virtualization", "linux/amd64")...)
	want = append(want, arm.wantFiles("arm64/virtualization", "linux/arm64")...)
	compareFiles(t, tree.Files, sortFiles(want))

	var wantPaths []string
	for _, a := range []string{"amd64", "arm64"} {
		for _, n := range []string{"cmdline", "config.json", "disk.img", "image.iso", "initramfs", "kernel", "manifest.json", "root.squashfs", "uki.efi"} {
			wantPaths = append(wantPaths, a+"/virtualization/"+n)
		}
	}
	wantPaths = append(wantPaths, "index.json") // sorted by path
	if got := paths(tree); !reflect.DeepEqual(got, wantPaths) {
		t.Errorf("paths = %q, want %q", got, wantPaths)
	}
	if tree.Digest != top.Digest || tree.MediaType != MediaTypeOCIIndex {
		t.Errorf("tree digest/type = %s %q, want %s %q", tree.Digest, tree.MediaType, top.Digest, MediaTypeOCIIndex)
	}
	if len(tree.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", tree.Warnings)
	}
	// Documents are byte for byte; layers are lazy.
	for _, fl := range tree.Files {
		switch fl.Role {
		case RoleIndex, RoleManifest, RoleConfig:
			if fl.Lazy() {
				t.Errorf("%s is lazy, want in memory", fl.Path)
			}
		default:
			if !fl.Lazy() {
				t.Errorf("%s holds data, want lazy", fl.Path)
			}
		}
	}
	if got := file(t, tree, "index.json").Data; string(got) != string(raw) {
		t.Errorf("index.json = %q, want %q", got, raw)
	}
	if got := file(t, tree, "arm64/virtualization/manifest.json").Data; string(got) != string(arm.raw) {
		t.Errorf("manifest.json = %q, want %q", got, arm.raw)
	}
	if got := file(t, tree, "amd64/virtualization/config.json").Data; string(got) != string(amd.cfgRaw) {
		t.Errorf("config.json = %q, want %q", got, amd.cfgRaw)
	}
}

func TestResolveSingleSeedManifest(t *testing.T) {
	f := newFake()
	img := addSeed(t, f, "one", map[string]string{"architecture": "arm64", "variant": "metal"})
	top := topOf(img.raw, MediaTypeSeedArtifacts)
	tree := mustResolve(t, f, top)
	compareFiles(t, tree.Files, sortFiles(img.wantFiles("arm64/metal", "arm64")))
	if tree.Digest != top.Digest || tree.MediaType != MediaTypeSeedArtifacts {
		t.Errorf("tree digest/type = %s %q", tree.Digest, tree.MediaType)
	}
	for _, p := range paths(tree) {
		if p == "index.json" {
			t.Errorf("a single manifest has an index.json")
		}
	}
}

// addIronCore registers an IronCore-style manifest: a standard OCI manifest
// with no mediaType field, the IronCore config and the given layers.
func addIronCore(tb testing.TB, f *fakeFetcher, cfgType, cfgRaw string, layers []ocispec.Descriptor, names []string, annotations map[string]string) testImage {
	tb.Helper()
	cfg := f.addBlob(cfgType, []byte(cfgRaw))
	img := testImage{cfg: &cfg, cfgRaw: []byte(cfgRaw), layers: layers, names: names}
	img.desc, img.raw = f.addManifest(tb, MediaTypeOCIManifest, manifestSpec{Config: img.cfg, Layers: layers, Annotations: annotations})
	return img
}

func TestResolveIronCoreCmdline(t *testing.T) {
	rootfs := layer(ironcoreType+"rootfs", 1<<30, "ic", nil)
	kernel := layer(ironcoreType+"kernel", 12<<20, "ic", nil)
	initrd := layer(ironcoreType+"initramfs", 40<<20, "ic", nil)
	cmdLayer := layer(ironcoreType+"cmdline", 27, "ic", nil)
	base := []ocispec.Descriptor{rootfs, kernel, initrd}
	baseNames := []string{"disk.img", "kernel", "initramfs"}
	fromConfig := func(s string) *File {
		return &File{Path: "amd64/default/cmdline", Role: RoleCmdline, MediaType: "text/plain", Size: int64(len(s)), Data: []byte(s), Platform: "amd64"}
	}

	tests := []struct {
		name    string
		cfgType string
		cfg     string
		layers  []ocispec.Descriptor
		names   []string
		cmdline *File // extra file expected from the config, nil for none
	}{
		{"config commandLine, no cmdline layer", MediaTypeIronCoreConfig, `{"commandLine":"` + ironcoreCmdline + `"}`, base, baseNames, fromConfig(ironcoreCmdline)},
		{"cmdline layer wins over config", MediaTypeIronCoreConfig, `{"commandLine":"` + ironcoreCmdline + `"}`, append(append([]ocispec.Descriptor{}, base...), cmdLayer), append(append([]string{}, baseNames...), "cmdline"), nil},
		{"empty config", MediaTypeIronCoreConfig, `{}`, base, baseNames, nil},
		{"empty commandLine", MediaTypeIronCoreConfig, `{"commandLine":""}`, base, baseNames, nil},
		{"config is not an object", MediaTypeIronCoreConfig, `[1,2]`, base, baseNames, nil},
		{"config is not JSON", MediaTypeIronCoreConfig, `not json`, base, baseNames, nil},
		{"commandLine of the wrong type", MediaTypeIronCoreConfig, `{"commandLine":42}`, base, baseNames, nil},
		{"v1alpha1 config with onmetal layers", "application/vnd.onmetal.image.config.v1alpha1+json", `{"commandLine":"quiet"}`,
			[]ocispec.Descriptor{
				layer("application/vnd.onmetal.image.rootfs.v1alpha1.rootfs", 5, "om", nil),
				layer("application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", 6, "om", nil),
				layer("application/vnd.onmetal.image.initramfs.v1alpha1.initramfs", 7, "om", nil),
				layer("application/vnd.onmetal.image.squashfs.v1alpha1.squashfs", 8, "om", nil),
			},
			[]string{"disk.img", "kernel", "initramfs", "root.squashfs"}, fromConfig("quiet")},
		{"commandLine with unicode and spaces", MediaTypeIronCoreConfig, `{"commandLine":"a=\u00e9 b=\"c d\""}`, base, baseNames, fromConfig(`a=é b="c d"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			img := addIronCore(t, f, tt.cfgType, tt.cfg, tt.layers, tt.names, map[string]string{"architecture": "amd64"})
			if strings.Contains(string(img.raw), `"mediaType":"application/vnd.oci.image.manifest`) {
				t.Fatalf("test manifest has a top-level mediaType: %s", img.raw)
			}
			tree := mustResolve(t, f, topOf(img.raw, MediaTypeOCIManifest))
			want := img.wantFiles("amd64/default", "amd64")
			if tt.cmdline != nil {
				want = append(want, *tt.cmdline)
			}
			compareFiles(t, tree.Files, sortFiles(want))
			if tree.MediaType != MediaTypeOCIManifest {
				t.Errorf("tree media type %q, want %q", tree.MediaType, MediaTypeOCIManifest)
			}
			if len(tree.Warnings) != 0 {
				t.Errorf("warnings: %q", tree.Warnings)
			}
			for _, fl := range tree.Files {
				if fl.Role != RoleCmdline {
					continue
				}
				if tt.cmdline != nil && (fl.Lazy() || string(fl.Data) != string(tt.cmdline.Data) || fl.Digest != "") {
					t.Errorf("cmdline = %+v, want data %q from the config", fl, tt.cmdline.Data)
				}
				if tt.cmdline == nil && (!fl.Lazy() || fl.Digest != cmdLayer.Digest) {
					t.Errorf("cmdline = %+v, want the lazy layer %s", fl, cmdLayer.Digest)
				}
			}
		})
	}
}

func TestResolveArchitectureAndVariant(t *testing.T) {
	tests := []struct {
		name        string
		platform    *ocispec.Platform // of the index entry; nil for none
		annotations map[string]string
		wantDir     string
		wantPlat    string
	}{
		{"entry platform", &ocispec.Platform{OS: "linux", Architecture: "arm64"}, map[string]string{"variant": "metal"}, "arm64/metal", "linux/arm64"},
		{"entry platform wins over annotation", &ocispec.Platform{OS: "linux", Architecture: "arm64"}, map[string]string{"architecture": "amd64", "variant": "kvm"}, "arm64/kvm", "linux/arm64"},
		{"annotation when the entry has no platform", nil, map[string]string{"architecture": "riscv64", "variant": "kvm"}, "riscv64/kvm", "riscv64"},
		{"annotation when the entry has an os only", &ocispec.Platform{OS: "linux"}, map[string]string{"architecture": "riscv64"}, "riscv64/default", "linux/riscv64"},
		{"unknown when there is neither", nil, map[string]string{"variant": "metal"}, "unknown/metal", "unknown"},
		{"unknown with empty annotation", nil, map[string]string{"architecture": ""}, "unknown/default", "unknown"},
		{"default variant", &ocispec.Platform{OS: "linux", Architecture: "amd64"}, nil, "amd64/default", "linux/amd64"},
		{"empty variant", &ocispec.Platform{OS: "linux", Architecture: "amd64"}, map[string]string{"variant": ""}, "amd64/default", "linux/amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			img := addSeed(t, f, "x", tt.annotations)
			e := img.desc
			e.Platform = tt.platform
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{e})
			tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
			want := append([]File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw)), Data: raw}},
				img.wantFiles(tt.wantDir, tt.wantPlat)...)
			compareFiles(t, tree.Files, sortFiles(want))
		})
	}
	t.Run("single manifest without architecture annotation", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "x", nil)
		tree := mustResolve(t, f, topOf(img.raw, MediaTypeSeedArtifacts))
		compareFiles(t, tree.Files, sortFiles(img.wantFiles("unknown/default", "unknown")))
	})
}

func TestResolveUnknownLayerNames(t *testing.T) {
	const unknownType = "application/vnd.example.firmware"
	tests := []struct {
		name  string
		title *string // nil: no title annotation
		want  string  // "" means layer-<12 hex>
	}{
		{"safe title", ptr("firmware.bin"), "firmware.bin"},
		{"no title", nil, ""},
		{"parent path", ptr("../etc"), ""},
		{"slash", ptr("a/b"), ""},
		{"NUL", ptr("x\x00y"), ""},
		{"escape sequence", ptr("\x1b[31m"), ""},
		{"dot", ptr("."), ""},
		{"dotdot", ptr(".."), ""},
		{"empty", ptr(""), ""},
		{"300 chars", ptr(strings.Repeat("z", 300)), ""},
		// JSON cannot carry invalid UTF-8: encoders and decoders turn it
		// into U+FFFD, which is a valid (safe) name.
		{"invalid UTF-8", ptr("\xfe\xff"), "\uFFFD\uFFFD"},
		{"title of a document name", ptr("manifest.json"), "manifest-2.json"},
		{"title of a role name", ptr("kernel"), "kernel"},
		// Shown raw by the mount but escaped by inspect, these would make
		// the two disagree (and "\u202egpj.exe" looks like "exe.jpg").
		{"right-to-left override", ptr("\u202egpj.exe"), ""},
		{"zero-width space", ptr("kernel\u200b"), ""},
		{"zero-width joiner", ptr("a\u200db.bin"), ""},
		{"byte order mark", ptr("\ufefffirmware.bin"), ""},
		{"bidi isolate", ptr("\u2067firmware.bin\u2069"), ""},
		{"no-break space", ptr("my\u00a0firmware.bin"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			var ann map[string]string
			if tt.title != nil {
				ann = title(*tt.title)
			}
			l := layer(unknownType, 77, tt.name, ann)
			disk := layer(seedType+"disk.img", 5, "d", nil)
			want := tt.want
			if want == "" {
				want = "layer-" + l.Digest.Encoded()[:12]
			}
			_, raw := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{
				Layers:      []ocispec.Descriptor{disk, l},
				Annotations: map[string]string{"architecture": "amd64"},
			})
			tree := mustResolve(t, f, topOf(raw, MediaTypeOCIManifest))
			got := file(t, tree, "amd64/default/"+want)
			if got.Role != RoleUnknown || got.Digest != l.Digest || got.Size != 77 || got.MediaType != unknownType || !got.Lazy() {
				t.Errorf("unknown layer file = %+v", got)
			}
			wantPaths := sortedStrings("amd64/default/manifest.json", "amd64/default/disk.img", "amd64/default/"+want)
			if got := paths(tree); !reflect.DeepEqual(got, wantPaths) {
				t.Errorf("paths = %q, want %q", got, wantPaths)
			}
			if len(tree.Warnings) != 1 || !strings.Contains(tree.Warnings[0], unknownType) || !strings.Contains(tree.Warnings[0], want) {
				t.Errorf("warnings = %q, want one naming %q and %q", tree.Warnings, unknownType, want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func sortedStrings(s ...string) []string {
	sort.Strings(s)
	return s
}

func TestResolveLayerCollisions(t *testing.T) {
	k1 := layer(seedType+"kernel", 1, "1", nil)
	k2 := layer(ironcoreType+"kernel", 2, "2", nil)
	k3 := layer("application/io.gardenlinux.kernel", 3, "3", nil)
	d1 := layer(ironcoreType+"rootfs", 10, "1", nil)
	d2 := layer(seedType+"disk.img", 20, "2", nil)
	s1 := layer(seedType+"squashfs", 30, "1", nil)
	s2 := layer(seedType+"squashfs", 40, "2", nil)
	c1 := layer(seedType+"cmdline", 50, "1", nil)
	c2 := layer(seedType+"cmdline", 60, "2", nil)
	f := newFake()
	img := addIronCore(t, f, MediaTypeIronCoreConfig, `{"commandLine":"ignored"}`,
		[]ocispec.Descriptor{k1, d1, k2, d2, s1, k3, s2, c1, c2},
		[]string{"kernel", "disk.img", "kernel-2", "disk-2.img", "root.squashfs", "kernel-3", "root-2.squashfs", "cmdline", "cmdline-2"},
		map[string]string{"architecture": "amd64", "variant": "metal"})
	tree := mustResolve(t, f, topOf(img.raw, MediaTypeOCIManifest))
	compareFiles(t, tree.Files, sortFiles(img.wantFiles("amd64/metal", "amd64")))
}

// TestResolveRoleNamesWin: the documents and the layers with a role get
// their names first, whatever stands before them in the manifest; layers of
// unknown type take the collision suffix. Layers of one role keep manifest
// order (kernel, kernel-2).
func TestResolveRoleNamesWin(t *testing.T) {
	const unknownType = "application/vnd.example.firmware"
	k1 := layer(seedType+"kernel", 1, "1", nil)
	k2 := layer(ironcoreType+"kernel", 2, "2", nil)
	disk := layer(seedType+"disk.img", 3, "d", nil)
	uki := layer(seedType+"uki", 4, "u", nil)
	cmd := layer(seedType+"cmdline", 5, "c", nil)
	unk := func(seed, t string) ocispec.Descriptor { return layer(unknownType, 100, seed, title(t)) }
	uKernel, uKernel2, uDisk, uUKI := unk("k", "kernel"), unk("k2", "kernel-2"), unk("d", "disk.img"), unk("u", "uki.efi")
	uCmd, uCfg, uMan := unk("c", "cmdline"), unk("cfg", "config.json"), unk("m", "manifest.json")
	const fromConfig = "" // the cmdline taken from the config has no digest

	tests := []struct {
		name   string
		cfg    string // IronCore config; "" for none
		layers []ocispec.Descriptor
		want   map[string]digest.Digest // file name -> digest
	}{
		{"unknown kernel before the real one", "", []ocispec.Descriptor{uKernel, k1},
			map[string]digest.Digest{"kernel": k1.Digest, "kernel-2": uKernel.Digest}},
		{"unknown kernel after the real one", "", []ocispec.Descriptor{k1, uKernel},
			map[string]digest.Digest{"kernel": k1.Digest, "kernel-2": uKernel.Digest}},
		{"unknown disk.img and uki.efi before the real ones", "", []ocispec.Descriptor{uDisk, uUKI, disk, uki},
			map[string]digest.Digest{"disk.img": disk.Digest, "disk-2.img": uDisk.Digest, "uki.efi": uki.Digest, "uki-2.efi": uUKI.Digest}},
		{"two real kernels keep manifest order, the unknown one comes after", "", []ocispec.Descriptor{uKernel, k2, k1},
			map[string]digest.Digest{"kernel": k2.Digest, "kernel-2": k1.Digest, "kernel-3": uKernel.Digest}},
		{"unknown kernel-2 before two real kernels", "", []ocispec.Descriptor{uKernel2, k1, k2},
			map[string]digest.Digest{"kernel": k1.Digest, "kernel-2": k2.Digest, "kernel-2-2": uKernel2.Digest}},
		{"unknown cmdline before the cmdline layer", "", []ocispec.Descriptor{uCmd, cmd, k1},
			map[string]digest.Digest{"cmdline": cmd.Digest, "cmdline-2": uCmd.Digest, "kernel": k1.Digest}},
		{"unknown cmdline and the config's commandLine", `{"commandLine":"quiet"}`, []ocispec.Descriptor{uCmd, k1},
			map[string]digest.Digest{"cmdline": fromConfig, "cmdline-2": uCmd.Digest, "kernel": k1.Digest}},
		{"unknown documents", `{}`, []ocispec.Descriptor{uCfg, uMan, k1},
			map[string]digest.Digest{"config-2.json": uCfg.Digest, "manifest-2.json": uMan.Digest, "kernel": k1.Digest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			spec := manifestSpec{Layers: tt.layers, Annotations: map[string]string{"architecture": "amd64"}}
			if tt.cfg != "" {
				cfg := f.addBlob(MediaTypeIronCoreConfig, []byte(tt.cfg))
				spec.Config = &cfg
			}
			_, raw := f.addManifest(t, MediaTypeOCIManifest, spec)
			tree := mustResolve(t, f, topOf(raw, MediaTypeOCIManifest))
			got := map[string]digest.Digest{}
			for _, fl := range tree.Files {
				name := strings.TrimPrefix(fl.Path, "amd64/default/")
				if fl.Role == RoleManifest || fl.Role == RoleConfig {
					if name != fl.Role.FileName() {
						t.Errorf("%s is at %s", fl.Role, fl.Path)
					}
					continue
				}
				got[name] = fl.Digest
				if want, ok := tt.want[name]; ok && want == fromConfig && (fl.Role != RoleCmdline || fl.Lazy()) {
					t.Errorf("%s = %+v, want the config's cmdline", name, fl)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("names -> digests\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestResolveDuplicateArchVariant(t *testing.T) {
	f := newFake()
	a := addSeed(t, f, "a", virt())
	b := addSeed(t, f, "b", virt())
	c := addSeed(t, f, "c", virt())
	d := addSeed(t, f, "d", map[string]string{"variant": "virtualization-2"})
	_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
		entry(a.desc, "linux", "amd64", nil),
		entry(b.desc, "linux", "amd64", nil),
		entry(d.desc, "linux", "amd64", nil),
		entry(c.desc, "linux", "amd64", nil),
	})
	tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
	want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw)), Data: raw}}
	want = append(want, a.wantFiles("amd64/virtualization", "linux/amd64")...)
	want = append(want, b.wantFiles("amd64/virtualization-2", "linux/amd64")...)
	// The real "virtualization-2" variant comes after the renamed one.
	want = append(want, d.wantFiles("amd64/virtualization-2-2", "linux/amd64")...)
	want = append(want, c.wantFiles("amd64/virtualization-3", "linux/amd64")...)
	compareFiles(t, tree.Files, sortFiles(want))
	if len(tree.Warnings) != 3 {
		t.Fatalf("warnings = %q, want 3", tree.Warnings)
	}
	for i, w := range []string{"amd64/virtualization-2", "amd64/virtualization-2-2", "amd64/virtualization-3"} {
		if !strings.Contains(tree.Warnings[i], w) {
			t.Errorf("warning %d = %q, want it to name %s", i, tree.Warnings[i], w)
		}
	}
}

// addSignature registers a cosign-like signature manifest: a non-OS config
// and a layer of an unknown type.
func addSignature(tb testing.TB, f *fakeFetcher) ocispec.Descriptor {
	cfg := f.addBlob(ociConfigType, []byte(`{"architecture":"","os":""}`))
	d, _ := f.addManifest(tb, MediaTypeOCIManifest, manifestSpec{
		MediaType: MediaTypeOCIManifest,
		Config:    &cfg,
		Layers:    []ocispec.Descriptor{layer(cosignLayerType, 250, "sig", map[string]string{"dev.cosignproject.cosign/signature": "MEUC"})},
	})
	return d
}

// addAttestation registers a BuildKit-style attestation manifest.
func addAttestation(tb testing.TB, f *fakeFetcher, of digest.Digest) ocispec.Descriptor {
	cfg := f.addBlob(ociConfigType, []byte(`{"architecture":"unknown","os":"unknown"}`))
	d, _ := f.addManifest(tb, MediaTypeOCIManifest, manifestSpec{
		MediaType: MediaTypeOCIManifest,
		Config:    &cfg,
		Layers:    []ocispec.Descriptor{layer("application/vnd.in-toto+json", 900, "att", map[string]string{"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})},
	})
	return entry(d, "unknown", "unknown", map[string]string{attestationRefKey: "attestation-manifest", "vnd.docker.reference.digest": of.String()})
}

// addContainer registers a plain container image manifest.
func addContainer(tb testing.TB, f *fakeFetcher, mt string) (ocispec.Descriptor, []byte) {
	cfg := f.addBlob(dockerConfigType, []byte(`{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]}}`))
	return f.addManifest(tb, mt, manifestSpec{
		MediaType: mt,
		Config:    &cfg,
		Layers: []ocispec.Descriptor{
			layer(dockerLayerType, 3<<20, "c1", nil),
			layer("application/vnd.oci.image.layer.v1.tar+gzip", 1<<20, "c2", nil),
		},
	})
}

func TestResolveSkipsNonOSEntries(t *testing.T) {
	f := newFake()
	img := addSeed(t, f, "os", virt())
	sig := addSignature(t, f)
	att := addAttestation(t, f, img.desc.Digest)
	ctr, _ := addContainer(t, f, MediaTypeOCIManifest)
	_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
		entry(sig, "", "", nil),
		entry(img.desc, "linux", "amd64", nil),
		att,
		entry(ctr, "linux", "arm64", nil),
	})
	tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
	want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw)), Data: raw}}
	want = append(want, img.wantFiles("amd64/virtualization", "linux/amd64")...)
	compareFiles(t, tree.Files, sortFiles(want))
	if len(tree.Warnings) != 3 {
		t.Fatalf("warnings = %q, want 3 (signature, attestation, container)", tree.Warnings)
	}
	for i, w := range []struct{ digest, text string }{
		{sig.Digest.String(), "not an OS image"},
		{att.Digest.String(), "attestation-manifest"},
		{ctr.Digest.String(), dockerConfigType},
	} {
		if !strings.Contains(tree.Warnings[i], w.digest) || !strings.Contains(tree.Warnings[i], w.text) {
			t.Errorf("warning %d = %q, want it to name %s and %q", i, tree.Warnings[i], w.digest, w.text)
		}
	}
}

func TestResolveNotAnOSImage(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T, f *fakeFetcher) Top
		want  []string // substrings of the error
	}{
		{"index of non-OS entries", func(t *testing.T, f *fakeFetcher) Top {
			sig := addSignature(t, f)
			ctr, _ := addContainer(t, f, MediaTypeOCIManifest)
			att := addAttestation(t, f, ctr.Digest)
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(ctr, "linux", "amd64", nil), att, sig})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"not an OS image", "attestation-manifest", dockerConfigType}},
		{"empty index", func(t *testing.T, f *fakeFetcher) Top {
			_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{})
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"not an OS image"}},
		{"index with null manifests", func(t *testing.T, f *fakeFetcher) Top {
			raw := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":null}`)
			return topOf(raw, MediaTypeOCIIndex)
		}, []string{"not an OS image"}},
		{"OCI container image", func(t *testing.T, f *fakeFetcher) Top {
			_, raw := addContainer(t, f, MediaTypeOCIManifest)
			return topOf(raw, MediaTypeOCIManifest)
		}, []string{"not an OS image", dockerConfigType, dockerLayerType}},
		{"Docker container image", func(t *testing.T, f *fakeFetcher) Top {
			_, raw := addContainer(t, f, MediaTypeDockerManifest)
			return topOf(raw, MediaTypeDockerManifest)
		}, []string{"not an OS image", dockerConfigType}},
		{"signature manifest", func(t *testing.T, f *fakeFetcher) Top {
			d := addSignature(t, f)
			return topOf(f.docs[d.Digest].raw, MediaTypeOCIManifest)
		}, []string{"not an OS image", cosignLayerType}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			top := tt.build(t, f)
			_, err := resolve(t, f, top)
			if err == nil {
				t.Fatalf("Resolve succeeded, want an error")
			}
			if !errors.Is(err, ErrNotOSImage) {
				t.Errorf("error %q does not wrap ErrNotOSImage", err)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestResolveOSImageDetection(t *testing.T) {
	// A manifest is an OS image by its config type, its artifactType, its
	// own media type or one layer with a known role.
	tests := []struct {
		name string
		spec manifestSpec
		cfg  string // config media type; "" for no config
		ok   bool
	}{
		{"OS config only", manifestSpec{Layers: []ocispec.Descriptor{}}, MediaTypeIronCoreConfig, true},
		{"OS artifactType with OCI config", manifestSpec{MediaType: MediaTypeOCIManifest, ArtifactType: MediaTypeSeedArtifacts, Layers: []ocispec.Descriptor{layer("application/x-foo", 1, "f", nil)}}, ociConfigType, true},
		{"artifactType in another case", manifestSpec{ArtifactType: "application/vnd.openkcm.image.artifacts.v1+json", Layers: []ocispec.Descriptor{}}, ociConfigType, true},
		{"seed manifest type, no config", manifestSpec{MediaType: MediaTypeSeedArtifacts, Layers: []ocispec.Descriptor{layer("application/x-foo", 1, "f", nil)}}, "", true},
		{"one known layer among unknown", manifestSpec{Layers: []ocispec.Descriptor{layer("application/x-foo", 1, "f", nil), layer("application/io.gardenlinux.initrd", 2, "g", nil)}}, ociConfigType, true},
		{"no known layer, foreign config", manifestSpec{Layers: []ocispec.Descriptor{layer("application/x-foo", 1, "f", nil)}}, ociConfigType, false},
		{"no layers, no config type", manifestSpec{Layers: []ocispec.Descriptor{}}, ociConfigType, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			spec := tt.spec
			if tt.cfg != "" {
				c := f.addBlob(tt.cfg, []byte(`{}`))
				spec.Config = &c
			}
			_, raw := f.addManifest(t, MediaTypeOCIManifest, spec)
			tree, err := resolve(t, f, topOf(raw, MediaTypeOCIManifest))
			if tt.ok && err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if !tt.ok {
				if err == nil || !strings.Contains(err.Error(), "not an OS image") {
					t.Fatalf("Resolve = %v, %v; want a not-an-OS-image error", tree, err)
				}
				return
			}
			file(t, tree, "unknown/default/manifest.json")
		})
	}
}

func TestResolveDockerManifestList(t *testing.T) {
	for _, inBody := range []bool{true, false} {
		t.Run(fmt.Sprintf("mediaType in body %v", inBody), func(t *testing.T) {
			f := newFake()
			cfg := f.addBlob(MediaTypeIronCoreConfig, []byte(`{"commandLine":"ro"}`))
			layers := []ocispec.Descriptor{layer(ironcoreType+"rootfs", 100, "dl", nil), layer(ironcoreType+"kernel", 200, "dl", nil)}
			img := testImage{cfg: &cfg, cfgRaw: []byte(`{"commandLine":"ro"}`), layers: layers, names: []string{"disk.img", "kernel"}}
			img.desc, img.raw = f.addManifest(t, MediaTypeDockerManifest, manifestSpec{MediaType: MediaTypeDockerManifest, Config: &cfg, Layers: layers})
			bodyType := ""
			if inBody {
				bodyType = MediaTypeDockerList
			}
			raw := indexJSON(t, bodyType, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil)})
			top := topOf(raw, MediaTypeDockerList)
			tree := mustResolve(t, f, top)
			want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeDockerList, Digest: top.Digest, Size: int64(len(raw)), Data: raw}}
			want = append(want, img.wantFiles("amd64/default", "linux/amd64")...)
			want = append(want, File{Path: "amd64/default/cmdline", Role: RoleCmdline, MediaType: "text/plain", Size: 2, Data: []byte("ro"), Platform: "linux/amd64"})
			compareFiles(t, tree.Files, sortFiles(want))
			if tree.MediaType != MediaTypeDockerList {
				t.Errorf("tree media type %q", tree.MediaType)
			}
		})
	}
	t.Run("index without mediaType recognised by shape", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "shape", nil)
		raw := indexJSON(t, "", []ocispec.Descriptor{entry(img.desc, "linux", "s390x", nil)})
		tree := mustResolve(t, f, topOf(raw, ""))
		file(t, tree, "index.json")
		file(t, tree, "s390x/default/kernel")
	})
}

// nest wraps d in n indexes (each with one entry), registering them, and
// returns the outermost index's bytes.
func nest(t *testing.T, f *fakeFetcher, d ocispec.Descriptor, n int) []byte {
	var raw []byte
	for i := 0; i < n; i++ {
		d, raw = f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{d})
	}
	return raw
}

func TestResolveNestedIndex(t *testing.T) {
	t.Run("index to index to manifest", func(t *testing.T) {
		f := newFake()
		amd := addSeed(t, f, "amd", virt())
		arm := addSeed(t, f, "arm", virt())
		inner, innerRaw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
			entry(amd.desc, "linux", "amd64", nil),
			entry(arm.desc, "linux", "arm64", nil),
		})
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{inner})
		top := topOf(raw, MediaTypeOCIIndex)
		tree := mustResolve(t, f, top)
		want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: top.Digest, Size: int64(len(raw)), Data: raw}}
		want = append(want, amd.wantFiles("amd64/virtualization", "linux/amd64")...)
		want = append(want, arm.wantFiles("arm64/virtualization", "linux/arm64")...)
		compareFiles(t, tree.Files, sortFiles(want))
		_ = innerRaw
	})
	t.Run("platform of the outer entry is inherited", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "inh", virt())
		inner, _ := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{img.desc})
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(inner, "linux", "ppc64le", nil)})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
		if got := file(t, tree, "ppc64le/virtualization/kernel").Platform; got != "linux/ppc64le" {
			t.Errorf("platform %q", got)
		}
	})
	t.Run("nested index referenced without a media type", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "nomt", virt())
		inner, _ := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil)})
		inner.MediaType = ""
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{inner})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
		file(t, tree, "amd64/virtualization/kernel")
	})
	for n := 1; n <= MaxIndexDepth+1; n++ {
		t.Run(fmt.Sprintf("%d indexes (%d nested) work", n, n-1), func(t *testing.T) {
			f := newFake()
			img := addSeed(t, f, "deep", virt())
			raw := nest(t, f, entry(img.desc, "linux", "amd64", nil), n)
			tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
			file(t, tree, "amd64/virtualization/manifest.json")
		})
	}
	for _, n := range []int{MaxIndexDepth + 2, MaxIndexDepth + 5} {
		t.Run(fmt.Sprintf("%d indexes (%d nested) are too deep", n, n-1), func(t *testing.T) {
			f := newFake()
			img := addSeed(t, f, "deep", virt())
			raw := nest(t, f, entry(img.desc, "linux", "amd64", nil), n)
			_, err := resolve(t, f, topOf(raw, MediaTypeOCIIndex))
			if err == nil || !strings.Contains(err.Error(), "nested") {
				t.Fatalf("Resolve error = %v, want one about nesting", err)
			}
		})
	}
}

func TestResolvePlatformFilter(t *testing.T) {
	build := func(t *testing.T) (*fakeFetcher, Top, testImage, testImage) {
		f := newFake()
		amd := addSeed(t, f, "amd64", virt())
		arm := addSeed(t, f, "arm64", virt())
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{
			entry(amd.desc, "linux", "amd64", nil),
			entry(arm.desc, "linux", "arm64", nil),
		})
		return f, topOf(raw, MediaTypeOCIIndex), amd, arm
	}
	t.Run("linux/arm64 keeps only arm64", func(t *testing.T) {
		f, top, _, arm := build(t)
		tree := mustResolve(t, f, top, "linux/arm64")
		want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: top.Digest, Size: int64(len(top.Raw)), Data: top.Raw}}
		want = append(want, arm.wantFiles("arm64/virtualization", "linux/arm64")...)
		compareFiles(t, tree.Files, sortFiles(want))
		if _, ok := f.docs[arm.desc.Digest]; !ok || f.manifests != 1 {
			t.Errorf("%d manifests fetched, want only the arm64 one", f.manifests)
		}
	})
	t.Run("case-insensitive", func(t *testing.T) {
		f, top, _, _ := build(t)
		tree := mustResolve(t, f, top, "Linux/ARM64")
		file(t, tree, "arm64/virtualization/kernel")
	})
	t.Run("two platforms keep both", func(t *testing.T) {
		f, top, _, _ := build(t)
		tree := mustResolve(t, f, top, "linux/arm64", "linux/amd64")
		file(t, tree, "arm64/virtualization/kernel")
		file(t, tree, "amd64/virtualization/kernel")
	})
	t.Run("no match", func(t *testing.T) {
		f, top, _, _ := build(t)
		_, err := resolve(t, f, top, "linux/s390x")
		if err == nil || !strings.Contains(err.Error(), "platforms") {
			t.Fatalf("Resolve error = %v, want one mentioning platforms", err)
		}
	})
	t.Run("other os", func(t *testing.T) {
		f, top, _, _ := build(t)
		_, err := resolve(t, f, top, "windows/amd64")
		if err == nil || !strings.Contains(err.Error(), "platforms") {
			t.Fatalf("Resolve error = %v, want one mentioning platforms", err)
		}
	})
	t.Run("variant", func(t *testing.T) {
		f := newFake()
		v8 := addSeed(t, f, "v8", virt())
		v7 := addSeed(t, f, "v7", map[string]string{"variant": "metal"})
		e8 := entry(v8.desc, "linux", "arm64", nil)
		e8.Platform.Variant = "v8"
		e7 := entry(v7.desc, "linux", "arm64", nil)
		e7.Platform.Variant = "v7"
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{e7, e8})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex), "linux/arm64/v8")
		file(t, tree, "arm64/virtualization/kernel")
		for _, p := range paths(tree) {
			if strings.HasPrefix(p, "arm64/metal") {
				t.Errorf("v7 entry not filtered: %s", p)
			}
		}
	})
	t.Run("entry without platform matches on its architecture annotation", func(t *testing.T) {
		f := newFake()
		amd := addSeed(t, f, "amd64", map[string]string{"architecture": "amd64"})
		arm := addSeed(t, f, "arm64", map[string]string{"architecture": "arm64"})
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{amd.desc, arm.desc})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex), "linux/arm64")
		want := []File{{Path: "index.json", Role: RoleIndex, MediaType: MediaTypeOCIIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw)), Data: raw}}
		want = append(want, arm.wantFiles("arm64/default", "arm64")...)
		compareFiles(t, tree.Files, sortFiles(want))
	})
	t.Run("nested index is filtered by its entries", func(t *testing.T) {
		f := newFake()
		amd := addSeed(t, f, "amd64", nil)
		arm := addSeed(t, f, "arm64", nil)
		inner, _ := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(amd.desc, "linux", "amd64", nil), entry(arm.desc, "linux", "arm64", nil)})
		_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{inner})
		tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex), "linux/amd64")
		if got := paths(tree); len(got) != 1+2+len(seedLayers) || !strings.HasPrefix(got[1], "amd64/") {
			t.Errorf("paths = %q, want index.json and amd64 only", got)
		}
	})
	t.Run("single manifest matching", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "one", map[string]string{"architecture": "arm64"})
		tree := mustResolve(t, f, topOf(img.raw, MediaTypeSeedArtifacts), "linux/arm64")
		file(t, tree, "arm64/default/kernel")
	})
	t.Run("single manifest not matching", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "one", map[string]string{"architecture": "arm64"})
		_, err := resolve(t, f, topOf(img.raw, MediaTypeSeedArtifacts), "linux/amd64")
		if err == nil || !strings.Contains(err.Error(), "platforms") || !strings.Contains(err.Error(), "arm64") {
			t.Fatalf("Resolve error = %v, want one naming arm64 and the platforms", err)
		}
	})
	t.Run("single manifest without architecture", func(t *testing.T) {
		f := newFake()
		img := addSeed(t, f, "one", nil)
		_, err := resolve(t, f, topOf(img.raw, MediaTypeSeedArtifacts), "linux/amd64")
		if err == nil || !strings.Contains(err.Error(), "platforms") || !strings.Contains(err.Error(), "unknown") {
			t.Fatalf("Resolve error = %v", err)
		}
	})
}

func TestResolveHostileNames(t *testing.T) {
	f := newFake()
	long := strings.Repeat("é", 200)
	cases := []struct {
		arch, variant string
		wantDir       string
	}{
		{"../../etc", "..", ".._.._etc/default"},
		{"a/b", "a/b", "a_b/a_b"},
		{"..", "x\x00y", "unknown/x_y"},
		{"x\x00y", ".", "x_y/default"},
		{".", "\x1b[31m", "unknown/_[31m"},
		{`c:\windows`, "/", "c:_windows/_"},
		{"\xff\xfe", "\n", "__/_"},
		{long, long, ""},
		{"index.json", "v", "index-2.json/v"},
	}
	var entries []ocispec.Descriptor
	for i, c := range cases {
		img := addSeed(t, f, fmt.Sprint(i), map[string]string{"variant": c.variant})
		entries = append(entries, entry(img.desc, "linux", c.arch, nil))
	}
	_, raw := f.addIndex(t, MediaTypeOCIIndex, entries)
	tree := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
	if got, want := len(tree.Files), 1+len(cases)*(2+len(seedLayers)); got != want {
		t.Errorf("%d files, want %d", got, want)
	}
	for _, c := range cases {
		if c.wantDir != "" {
			file(t, tree, c.wantDir+"/kernel")
		}
	}
	for _, fl := range tree.Files {
		for _, e := range strings.Split(fl.Path, "/") {
			if !SafeName(e) || e == ".." {
				t.Errorf("unsafe element %q in %q", e, fl.Path)
			}
		}
	}
	// The architecture "index.json" must not turn the index.json file into
	// a directory as well.
	if fl := file(t, tree, "index.json"); fl.Role != RoleIndex {
		t.Errorf("index.json is %+v", fl)
	}
}

func TestResolveHostile(t *testing.T) {
	seedCfg := func(f *fakeFetcher) *ocispec.Descriptor {
		c := f.addBlob(MediaTypeSeedConfig, []byte(`{}`))
		return &c
	}
	disk := layer(seedType+"disk.img", 10, "d", nil)
	manifestTop := func(t *testing.T, f *fakeFetcher, spec manifestSpec) Top {
		_, raw := f.addManifest(t, MediaTypeOCIManifest, spec)
		return topOf(raw, MediaTypeOCIManifest)
	}
	indexTop := func(t *testing.T, f *fakeFetcher, entries ...ocispec.Descriptor) Top {
		_, raw := f.addIndex(t, MediaTypeOCIIndex, entries)
		return topOf(raw, MediaTypeOCIIndex)
	}
	tests := []struct {
		name   string
		build  func(t *testing.T, f *fakeFetcher) Top
		want   string // substring of the error
		wantIs error  // when set, errors.Is must hold
	}{
		{"malformed JSON top", func(t *testing.T, f *fakeFetcher) Top {
			return topOf([]byte(`{"schemaVersion":2,"layers":[`), MediaTypeOCIManifest)
		}, "decode JSON", nil},
		{"empty top", func(t *testing.T, f *fakeFetcher) Top { return topOf(nil, MediaTypeOCIManifest) }, "decode JSON", nil},
		{"JSON array top", func(t *testing.T, f *fakeFetcher) Top { return topOf([]byte(`[]`), "") }, "decode JSON", nil},
		{"JSON null top", func(t *testing.T, f *fakeFetcher) Top { return topOf([]byte(`null`), "") }, "neither", nil},
		{"empty object top", func(t *testing.T, f *fakeFetcher) Top { return topOf([]byte(`{}`), MediaTypeOCIManifest) }, "neither", nil},
		{"wrong field types", func(t *testing.T, f *fakeFetcher) Top {
			return topOf([]byte(`{"layers":{"a":1}}`), MediaTypeOCIManifest)
		}, "decode JSON", nil},
		{"top bytes do not match the digest", func(t *testing.T, f *fakeFetcher) Top {
			top := manifestTop(t, f, manifestSpec{Config: seedCfg(f), Layers: []ocispec.Descriptor{disk}})
			top.Digest = digest.FromString("something else")
			return top
		}, "does not match", nil},
		{"top invalid digest", func(t *testing.T, f *fakeFetcher) Top {
			top := manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{disk}})
			top.Digest = "sha256:not-hex"
			return top
		}, "digest", nil},
		{"top empty digest", func(t *testing.T, f *fakeFetcher) Top {
			top := manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{disk}})
			top.Digest = ""
			return top
		}, "digest", nil},
		{"top unknown digest algorithm", func(t *testing.T, f *fakeFetcher) Top {
			top := manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{disk}})
			top.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e"
			return top
		}, "digest", nil},
		{"manifest bytes do not match the index entry", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "m", nil)
			f.override[img.desc.Digest] = append(append([]byte{}, img.raw...), ' ')
			return indexTop(t, f, entry(img.desc, "linux", "amd64", nil))
		}, "does not match", nil},
		{"malformed manifest in an index", func(t *testing.T, f *fakeFetcher) Top {
			d := f.addDoc(MediaTypeOCIManifest, []byte(`{"layers":[{"mediaType":`))
			return indexTop(t, f, entry(d, "linux", "amd64", nil))
		}, "decode JSON", nil},
		{"index points to a missing manifest", func(t *testing.T, f *fakeFetcher) Top {
			d := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString("gone"), Size: 10}
			return indexTop(t, f, entry(d, "linux", "amd64", nil))
		}, "fetch manifest", errMissing},
		{"config size differs from its descriptor", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			c.Size++
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "descriptor says", nil},
		{"config smaller than its descriptor says", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			c.Size = 0
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "descriptor says", nil},
		{"config larger than a document may be", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			c.Size = MaxDocumentSize + 1
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "limit", nil},
		{"config bytes do not match", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			f.override[c.Digest] = []byte(`{"x"}`)
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "does not match", nil},
		{"config missing", func(t *testing.T, f *fakeFetcher) Top {
			c := ocispec.Descriptor{MediaType: MediaTypeSeedConfig, Digest: digest.FromString("no config"), Size: 2}
			return manifestTop(t, f, manifestSpec{Config: &c, Layers: []ocispec.Descriptor{disk}})
		}, "fetch config", errMissing},
		{"config negative size", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			c.Size = -1
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "negative", nil},
		{"config invalid digest", func(t *testing.T, f *fakeFetcher) Top {
			c := seedCfg(f)
			c.Digest = "sha256:zz"
			return manifestTop(t, f, manifestSpec{Config: c, Layers: []ocispec.Descriptor{disk}})
		}, "digest", nil},
		{"layer negative size", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Size = -5
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "negative size", nil},
		{"layer larger than MaxLayerSize", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Size = MaxLayerSize + 1
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "larger than the limit", nil},
		{"layer invalid digest", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Digest = "sha256:../../../etc/passwd"
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "digest", nil},
		{"layer digest too short", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Digest = "sha256:abc"
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "digest", nil},
		{"layer empty digest", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Digest = ""
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "digest", nil},
		{"layer unknown digest algorithm", func(t *testing.T, f *fakeFetcher) Top {
			l := disk
			l.Digest = "md5:d41d8cd98f00b204e9800998ecf8427e"
			return manifestTop(t, f, manifestSpec{Layers: []ocispec.Descriptor{l}})
		}, "digest", nil},
		{"more than MaxLayers layers", func(t *testing.T, f *fakeFetcher) Top {
			ls := make([]ocispec.Descriptor, MaxLayers+1)
			for i := range ls {
				ls[i] = disk
			}
			return manifestTop(t, f, manifestSpec{Layers: ls})
		}, "limit", nil},
		{"index entry invalid digest", func(t *testing.T, f *fakeFetcher) Top {
			return indexTop(t, f, ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: "sha256:xyz", Size: 1})
		}, "digest", nil},
		{"index entry negative size", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "n", nil)
			img.desc.Size = -1
			return indexTop(t, f, img.desc)
		}, "negative", nil},
		{"more than MaxManifests index entries", func(t *testing.T, f *fakeFetcher) Top {
			img := addSeed(t, f, "many", nil)
			es := make([]ocispec.Descriptor, MaxManifests+1)
			for i := range es {
				es[i] = img.desc
			}
			return indexTop(t, f, es...)
		}, "limit", nil},
		{"nested indexes multiplying past MaxManifests", func(t *testing.T, f *fakeFetcher) Top {
			// Each level repeats the one below 40 times: 40^4 manifests
			// from a few small documents, within the depth limit.
			img := addSeed(t, f, "fan", nil)
			d := entry(img.desc, "linux", "amd64", nil)
			for level := 0; level < MaxIndexDepth-1; level++ {
				es := make([]ocispec.Descriptor, 40)
				for i := range es {
					es[i] = d
				}
				d, _ = f.addIndex(t, MediaTypeOCIIndex, es)
			}
			es := make([]ocispec.Descriptor, 40)
			for i := range es {
				es[i] = d
			}
			return indexTop(t, f, es...)
		}, "limit", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			top := tt.build(t, f)
			tree, err := resolve(t, f, top)
			if err == nil {
				t.Fatalf("Resolve succeeded with %d files, want an error", len(tree.Files))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
		})
	}
}

func TestResolveCanceled(t *testing.T) {
	f := newFake()
	img := addSeed(t, f, "c", nil)
	_, raw := f.addIndex(t, MediaTypeOCIIndex, []ocispec.Descriptor{entry(img.desc, "linux", "amd64", nil)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Resolve(ctx, f, topOf(raw, MediaTypeOCIIndex), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve error = %v, want context.Canceled", err)
	}
}

func TestResolveDeterministic(t *testing.T) {
	// The same input gives the same tree every time (maps are not
	// iterated in a way that shows).
	f := newFake()
	var es []ocispec.Descriptor
	for i := 0; i < 6; i++ {
		img := addSeed(t, f, fmt.Sprint(i), virt())
		es = append(es, entry(img.desc, "linux", []string{"amd64", "arm64"}[i%2], nil))
	}
	_, raw := f.addIndex(t, MediaTypeOCIIndex, es)
	first := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
	for i := 0; i < 20; i++ {
		again := mustResolve(t, f, topOf(raw, MediaTypeOCIIndex))
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("run %d differs", i)
		}
	}
}
