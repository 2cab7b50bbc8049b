package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// diskSize is the size of the amd64 disk image: a real ext4 file system,
// mostly random files.
const diskSize = 256 << 20

// layerFile is one layer of a test image: its role's media type and the
// file that holds it.
type layerFile struct {
	mediaType string
	path      string
	name      string // the file name expected in the tree
}

// sources are the files the test images are made of, built once per run.
type sources struct {
	dir      string
	amd64    []layerFile
	arm64    []layerFile
	diskTree map[string]string // path -> sha256 inside the ext4 disk
	cmdline  string
}

var (
	srcOnce sync.Once
	srcVal  *sources
	srcErr  error
)

// buildSources builds the disk, squashfs, ISO and small files once.
func buildSources(t *testing.T) *sources {
	t.Helper()
	fixture.RequireTools(t, "mkfs.ext4", "mksquashfs", "xorriso")
	srcOnce.Do(func() { srcVal, srcErr = makeSources() })
	if srcErr != nil {
		t.Fatalf("build test image sources: %v", srcErr)
	}
	return srcVal
}

func makeSources() (*sources, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "osimagefs-e2e-src-")
	if err != nil {
		return nil, err
	}
	s := &sources{dir: dir, cmdline: "console=ttyS0 root=/dev/vda ro quiet"}
	p := func(n string) string { return filepath.Join(dir, n) }

	diskTree := p("disktree")
	if s.diskTree, err = fixture.RandomTree(diskTree, 1, 40, 200<<20); err != nil {
		return nil, err
	}
	if err := fixture.WriteTree(diskTree, map[string][]byte{"etc/os-release": []byte("NAME=osimagefs-test\n")}); err != nil {
		return nil, err
	}
	if s.diskTree, err = fixture.TreeSums(diskTree); err != nil {
		return nil, err
	}
	if err := fixture.MakeExt4(ctx, diskTree, p("disk.img"), diskSize); err != nil {
		return nil, err
	}
	sqTree := p("sqtree")
	if _, err := fixture.RandomTree(sqTree, 2, 20, 8<<20); err != nil {
		return nil, err
	}
	if err := fixture.MakeSquashfs(ctx, sqTree, p("root.squashfs")); err != nil {
		return nil, err
	}
	isoTree := p("isotree")
	if _, err := fixture.RandomTree(isoTree, 3, 10, 4<<20); err != nil {
		return nil, err
	}
	if err := fixture.MakeISO(ctx, isoTree, p("image.iso"), "OSIMAGEFS"); err != nil {
		return nil, err
	}
	small := map[string][]byte{
		"kernel":          fixture.RandomBytes(4, 6<<20+17),
		"initramfs":       fixture.RandomBytes(5, 3<<20+5),
		"uki.efi":         fixture.RandomBytes(6, 2<<20+3),
		"cmdline":         []byte(s.cmdline),
		"arm64/kernel":    fixture.RandomBytes(7, 5<<20+1),
		"arm64/initramfs": fixture.RandomBytes(8, 1<<20+9),
		"arm64/cmdline":   []byte("console=ttyAMA0 root=/dev/vda"),
	}
	if err := fixture.WriteTree(dir, small); err != nil {
		return nil, err
	}
	seed := func(role string) string { return "application/vnd.OpenKCM.image." + role }
	s.amd64 = []layerFile{
		{seed("disk.img"), p("disk.img"), "disk.img"},
		{seed("kernel"), p("kernel"), "kernel"},
		{seed("initramfs"), p("initramfs"), "initramfs"},
		{seed("squashfs"), p("root.squashfs"), "root.squashfs"},
		{seed("cmdline"), p("cmdline"), "cmdline"},
		{seed("uki"), p("uki.efi"), "uki.efi"},
		{seed("iso"), p("image.iso"), "image.iso"},
	}
	s.arm64 = []layerFile{
		{seed("kernel"), p("arm64/kernel"), "kernel"},
		{seed("initramfs"), p("arm64/initramfs"), "initramfs"},
		{seed("squashfs"), p("root.squashfs"), "root.squashfs"},
		{seed("cmdline"), p("arm64/cmdline"), "cmdline"},
	}
	return s, nil
}

// pushed describes an image in the registry and the files a mount of it
// must show: tree path -> source file (or inline content).
type pushed struct {
	ref      string // repo:tag on the registry's host
	digest   string
	expected map[string]expectedFile
}

type expectedFile struct {
	path    string // source file, or
	content []byte // exact content
}

// pushManifest pushes the layers and a manifest, returning its descriptor.
func pushManifest(t *testing.T, host, repo string, layers []layerFile, configType string, config []byte, manifestType string, withMediaType bool, annotations map[string]string, exp map[string]expectedFile, dir string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	cfg, err := registrytest.PushBlobBytes(ctx, host, repo, config, configType)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{"schemaVersion": 2, "config": cfg, "annotations": annotations}
	if withMediaType {
		m["mediaType"] = ocispec.MediaTypeImageManifest
		m["artifactType"] = "application/vnd.OpenKCM.image.artifacts.v1+json"
	}
	var descs []ocispec.Descriptor
	for _, l := range layers {
		d, err := registrytest.PushBlobFile(ctx, host, repo, l.path, l.mediaType)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
		exp[dir+"/"+l.name] = expectedFile{path: l.path}
	}
	m["layers"] = descs
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := registrytest.PutManifest(ctx, host, repo, digest.FromBytes(raw).String(), manifestType, raw)
	if err != nil {
		t.Fatal(err)
	}
	exp[dir+"/manifest.json"] = expectedFile{content: raw}
	exp[dir+"/config.json"] = expectedFile{content: config}
	return ocispec.Descriptor{MediaType: manifestType, Digest: digest.Digest(dg), Size: int64(len(raw))}
}

// pushSeedIndex pushes the seed-format multi-arch image (index with amd64
// and arm64) as os/seed:1.0.
func pushSeedIndex(t *testing.T, host string, s *sources) pushed {
	t.Helper()
	const repo = "os/seed"
	exp := map[string]expectedFile{}
	cfgType := "application/vnd.OpenKCM.image.config.v1+json"
	amd := pushManifest(t, host, repo, s.amd64, cfgType, []byte(`{}`), ocispec.MediaTypeImageManifest, true,
		map[string]string{"variant": "virtualization", "architecture": "amd64", "org.opencontainers.image.title": "Test OS (amd64)"}, exp, "amd64/virtualization")
	arm := pushManifest(t, host, repo, s.arm64, cfgType, []byte(`{"created":"x"}`), ocispec.MediaTypeImageManifest, true,
		map[string]string{"variant": "virtualization", "architecture": "arm64"}, exp, "arm64/virtualization")
	amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	idx, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": []ocispec.Descriptor{amd, arm}})
	if err != nil {
		t.Fatal(err)
	}
	dg, err := registrytest.PutManifest(context.Background(), host, repo, "1.0", ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		t.Fatal(err)
	}
	exp["index.json"] = expectedFile{content: idx}
	return pushed{ref: repo + ":1.0", digest: dg, expected: exp}
}

// pushIronCore pushes an IronCore-format image: a standard OCI manifest
// without a mediaType field, IronCore layer types, and the command line in
// the config instead of a layer.
func pushIronCore(t *testing.T, host string, s *sources) pushed {
	t.Helper()
	const repo = "os/ironcore"
	exp := map[string]expectedFile{}
	layers := []layerFile{
		{"application/vnd.ironcore.image.rootfs", s.amd64[0].path, "disk.img"},
		{"application/vnd.ironcore.image.kernel", s.amd64[1].path, "kernel"},
		{"application/vnd.ironcore.image.initramfs", s.amd64[2].path, "initramfs"},
		{"application/vnd.ironcore.image.squashfs", s.amd64[3].path, "root.squashfs"},
	}
	cfg, _ := json.Marshal(map[string]string{"commandLine": s.cmdline})
	d := pushManifest(t, host, repo, layers, "application/vnd.ironcore.image.config.v1+json", cfg, ocispec.MediaTypeImageManifest, false,
		map[string]string{"variant": "metal", "architecture": "amd64"}, exp, "amd64/metal")
	exp["amd64/metal/cmdline"] = expectedFile{content: []byte(s.cmdline)}
	// Tag it: re-put the same manifest under a tag.
	raw := exp["amd64/metal/manifest.json"].content
	if _, err := registrytest.PutManifest(context.Background(), host, repo, "v1", ocispec.MediaTypeImageManifest, raw); err != nil {
		t.Fatal(err)
	}
	return pushed{ref: repo + ":v1", digest: d.Digest.String(), expected: exp}
}
