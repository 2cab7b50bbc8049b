package image

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotOSImage is returned (wrapped) when a reference holds no OS image.
var ErrNotOSImage = errors.New("is not an OS image")

// Fetcher fetches documents. blobstore implements it against a registry;
// tests implement it with maps.
type Fetcher interface {
	// Manifest returns the raw bytes of the manifest or index d and the media
	// type the registry served it with.
	Manifest(ctx context.Context, d ocispec.Descriptor) ([]byte, string, error)
	// Blob returns the whole content of a small blob (a config).
	Blob(ctx context.Context, d ocispec.Descriptor) ([]byte, error)
}

// Top is the document a reference resolved to.
type Top struct {
	Digest    digest.Digest
	MediaType string
	Raw       []byte
}

// Resolve builds the tree for the document top, fetching the manifests and
// configs it refers to. platforms, when not empty, keeps only the index
// entries matching one of them. It fails when nothing in the image is an OS
// image, naming what it found instead.
func Resolve(ctx context.Context, f Fetcher, top Top, platforms []Platform) (*Tree, error) {
	if err := verify(top.Raw, top.Digest); err != nil {
		return nil, fmt.Errorf("top document: %w", err)
	}
	doc, isIndex, err := parseDocument(top.Raw, top.MediaType)
	if err != nil {
		return nil, fmt.Errorf("top document %s: %w", top.Digest, err)
	}
	r := &resolver{f: f, platforms: platforms, dirs: nameSet{}, docBytes: int64(len(top.Raw))}
	r.dirs.take("index.json")
	t := &Tree{Digest: top.Digest, MediaType: firstNonEmpty(doc.MediaType, top.MediaType)}
	if isIndex {
		t.Files = append(t.Files, File{Path: "index.json", Role: RoleIndex, MediaType: t.MediaType, Digest: top.Digest, Size: int64(len(top.Raw)), Data: top.Raw})
		if err := r.index(ctx, doc, nil, 0, nil); err != nil {
			return nil, err
		}
	} else {
		if len(platforms) > 0 && !anyMatch(platforms, ocispec.Platform{Architecture: doc.Annotations[annotationArchitecture]}) {
			return nil, fmt.Errorf("%s is a single manifest for architecture %q, which matches none of the requested platforms", top.Digest, firstNonEmpty(doc.Annotations[annotationArchitecture], unknownArchitecture))
		}
		desc := ocispec.Descriptor{MediaType: t.MediaType, Digest: top.Digest, Size: int64(len(top.Raw))}
		ok, err := r.manifest(ctx, desc, doc, top.Raw, nil)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s %w: %s", top.Digest, ErrNotOSImage, describe(doc))
		}
	}
	if r.images == 0 {
		if len(platforms) > 0 && r.filtered > 0 {
			return nil, fmt.Errorf("no OS image in %s matches the requested platforms (%d entries filtered out)", top.Digest, r.filtered)
		}
		if len(r.warnings) == 0 {
			return nil, fmt.Errorf("%s %w: the index lists no manifests", top.Digest, ErrNotOSImage)
		}
		return nil, fmt.Errorf("%s %w: no index entry is one (%s)", top.Digest, ErrNotOSImage, strings.Join(r.warnings, "; "))
	}
	t.Files = append(t.Files, r.files...)
	t.Images = r.manifests
	t.Warnings = r.warnings
	sort.Slice(t.Files, func(i, j int) bool { return t.Files[i].Path < t.Files[j].Path })
	return t, nil
}

// resolver carries the state of one Resolve call.
type resolver struct {
	f         Fetcher
	platforms []Platform
	dirs      nameSet // "<arch>/<variant>" directories handed out
	files     []File
	warnings  []string
	images    int // manifests that made it into the tree
	manifests []Image
	entries   int   // index entries seen, over all nested indexes
	filtered  int   // index entries dropped by the platform filter
	docBytes  int64 // bytes of the documents fetched so far, the top included
}

// fetched counts n more bytes of documents against MaxTotalDocumentSize.
func (r *resolver) fetched(n int, what string) error {
	r.docBytes += int64(n)
	if r.docBytes > MaxTotalDocumentSize {
		return fmt.Errorf("%s: the indexes, manifests and configs of the image add up to more than the limit of %d bytes", what, int64(MaxTotalDocumentSize))
	}
	return nil
}

// entryName names an index entry in errors: its position, through nested
// indexes ("index entry 2", "index entry 0 > 3"), and its platform.
func entryName(trail []int, p *ocispec.Platform) string {
	pos := make([]string, len(trail))
	for i, n := range trail {
		pos[i] = strconv.Itoa(n)
	}
	s := "index entry " + strings.Join(pos, " > ")
	if pl := platformOrEmpty(p); pl.OS != "" || pl.Architecture != "" {
		s += fmt.Sprintf(" (platform %q)", strings.TrimPrefix(pl.OS+"/"+pl.Architecture, "/"))
	}
	return s
}

// index walks the entries of an index, following nested indexes up to
// MaxIndexDepth. inherited is the platform of the entry that led here;
// trail is the position of that entry (nil at the top), for errors.
func (r *resolver) index(ctx context.Context, doc document, inherited *ocispec.Platform, depth int, trail []int) error {
	if depth > MaxIndexDepth {
		return fmt.Errorf("indexes nested more than %d deep", MaxIndexDepth)
	}
	for i, e := range doc.Manifests {
		// Nested indexes may repeat entries: bound the whole walk, not
		// just each index, or a few small documents fan out without end.
		if r.entries++; r.entries > MaxManifests {
			return fmt.Errorf("more than the limit of %d index entries in all (nested indexes included)", MaxManifests)
		}
		if e.Platform == nil {
			e.Platform = inherited
		}
		if t := e.Annotations[annotationDockerRefType]; t != "" {
			r.warnf("skipped %s: a %q, not an OS image", e.Digest, t)
			continue
		}
		// An entry without an architecture is matched after fetching, on the
		// manifest's "architecture" annotation (the tree's own fallback).
		if len(r.platforms) > 0 && !IsIndex(e.MediaType) && platformOrEmpty(e.Platform).Architecture != "" && !anyMatch(r.platforms, platformOrEmpty(e.Platform)) {
			r.filtered++
			continue
		}
		here := append(trail[:len(trail):len(trail)], i)
		at := entryName(here, e.Platform)
		raw, served, err := r.f.Manifest(ctx, e)
		if err != nil {
			return fmt.Errorf("%s: fetch manifest %s: %w", at, e.Digest, err)
		}
		if err := verify(raw, e.Digest); err != nil {
			return fmt.Errorf("%s: manifest %s: %w", at, e.Digest, err)
		}
		if err := r.fetched(len(raw), at); err != nil {
			return err
		}
		sub, isIndex, err := parseDocument(raw, firstNonEmpty(served, e.MediaType))
		if err != nil {
			return fmt.Errorf("%s: parse manifest %s: %w", at, e.Digest, err)
		}
		if isIndex {
			if depth+1 > MaxIndexDepth {
				return fmt.Errorf("%s: indexes nested more than %d deep", at, MaxIndexDepth)
			}
			if err := r.index(ctx, sub, e.Platform, depth+1, here); err != nil {
				return err
			}
			continue
		}
		if p := platformOrEmpty(e.Platform); len(r.platforms) > 0 && p.Architecture == "" {
			p.Architecture = sub.Annotations[annotationArchitecture]
			if !anyMatch(r.platforms, p) {
				r.filtered++
				continue
			}
		}
		ok, err := r.manifest(ctx, e, sub, raw, e.Platform)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if !ok {
			r.warnf("skipped %s: not an OS image (%s)", e.Digest, describe(sub))
		}
	}
	return nil
}

// manifest adds the files of one manifest. It reports false, adding
// nothing, when the manifest is not an OS image.
func (r *resolver) manifest(ctx context.Context, desc ocispec.Descriptor, doc document, raw []byte, p *ocispec.Platform) (bool, error) {
	if !isOSImage(doc) {
		return false, nil
	}
	// A manifest adds its layers and up to three files of its own
	// (manifest.json, config.json, cmdline).
	if n := len(r.files) + len(doc.Layers) + 3; n > MaxFiles {
		return false, fmt.Errorf("manifest %s: its %d layers would take the tree past the limit of %d files (%d files before it)", desc.Digest, len(doc.Layers), MaxFiles, len(r.files))
	}
	arch := ""
	osName := ""
	if p != nil {
		arch, osName = p.Architecture, p.OS
	}
	arch = safeElement(firstNonEmpty(arch, doc.Annotations[annotationArchitecture]), unknownArchitecture)
	variant := safeElement(firstNonEmpty(doc.Annotations[annotationVariant]), defaultVariant)
	dir := r.claimDir(arch, variant)
	platform := strings.TrimPrefix(osName+"/"+arch, "/")

	names := nameSet{}
	add := func(name string, f File) string {
		name = names.claim(name)
		f.Path = dir + "/" + name
		f.Platform = platform
		r.files = append(r.files, f)
		return name
	}
	add("manifest.json", File{Role: RoleManifest, MediaType: firstNonEmpty(doc.MediaType, desc.MediaType), Digest: desc.Digest, Size: int64(len(raw)), Data: raw})

	var cfg config
	if doc.Config != nil {
		c := *doc.Config
		if c.Size > MaxDocumentSize {
			return false, fmt.Errorf("manifest %s: config %s is %d bytes, more than the limit of %d", desc.Digest, c.Digest, c.Size, MaxDocumentSize)
		}
		craw, err := r.f.Blob(ctx, c)
		if err != nil {
			return false, fmt.Errorf("fetch config %s of manifest %s: %w", c.Digest, desc.Digest, err)
		}
		if err := verify(craw, c.Digest); err != nil {
			return false, fmt.Errorf("config %s of manifest %s: %w", c.Digest, desc.Digest, err)
		}
		if err := r.fetched(len(craw), fmt.Sprintf("config %s of manifest %s", c.Digest, desc.Digest)); err != nil {
			return false, err
		}
		if int64(len(craw)) != c.Size {
			return false, fmt.Errorf("config %s of manifest %s: descriptor says %d bytes, registry sent %d", c.Digest, desc.Digest, c.Size, len(craw))
		}
		add("config.json", File{Role: RoleConfig, MediaType: c.MediaType, Digest: c.Digest, Size: c.Size, Data: craw})
		cfg = parseConfig(craw)
	}

	// Role names win: the documents above, then the layers with a role
	// in manifest order, then the config's cmdline, and only then the
	// layers of unknown type, in manifest order. An unknown layer titled
	// "kernel" is kernel-2 wherever it stands, never the real kernel.
	hasCmdline := false
	var unknown []ocispec.Descriptor
	img := Image{Digest: desc.Digest, Dir: dir}
	for _, l := range doc.Layers {
		if IsChunkTable(l.MediaType) {
			img.Tables = append(img.Tables, l) // checked, not shown
			continue
		}
		img.Layers = append(img.Layers, l)
		role := RoleOf(l.MediaType)
		switch role {
		case RoleUnknown:
			unknown = append(unknown, l)
			continue
		case RoleCmdline:
			hasCmdline = true
		}
		add(role.FileName(), File{Role: role, MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	if !hasCmdline && cfg.CommandLine != "" {
		add(RoleCmdline.FileName(), File{Role: RoleCmdline, MediaType: "text/plain", Size: int64(len(cfg.CommandLine)), Data: []byte(cfg.CommandLine)})
	}
	for _, l := range unknown {
		name := add(unknownLayerName(l.Annotations[annotationTitle], l.Digest), File{Role: RoleUnknown, MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
		r.warnf("%s: layer %s has unknown media type %q, shown as %s", dir, l.Digest, l.MediaType, name)
	}
	r.images++
	r.manifests = append(r.manifests, img)
	return true, nil
}

// claimDir hands out "<arch>/<variant>", suffixing the variant on a clash.
// r.dirs holds the directories handed out (and index.json); like nameSet,
// a taken directory maps to the next suffix to try.
func (r *resolver) claimDir(arch, variant string) string {
	if r.dirs.has(arch) { // named like a file at the top (index.json): suffix it
		ext := path.Ext(arch)
		arch = strings.TrimSuffix(arch, ext) + "-2" + ext
	}
	dir := arch + "/" + variant
	if !r.dirs.has(dir) {
		r.dirs.take(dir)
		return dir
	}
	for i := r.dirs[dir]; ; i++ {
		cand := fmt.Sprintf("%s/%s-%d", arch, variant, i)
		if !r.dirs.has(cand) {
			r.dirs[dir] = i + 1
			r.dirs.take(cand)
			r.warnf("two OS images for %s: this one is shown as %s", dir, cand)
			return cand
		}
	}
}

func (r *resolver) warnf(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// isOSImage reports whether a manifest is an OS image: its config or
// artifact type says so, or at least one layer has a known role.
func isOSImage(doc document) bool {
	if doc.Config != nil && IsOSConfig(doc.Config.MediaType) {
		return true
	}
	if IsOSArtifactType(doc.ArtifactType) || IsOSArtifactType(doc.MediaType) {
		return true
	}
	for _, l := range doc.Layers {
		if RoleOf(l.MediaType) != RoleUnknown {
			return true
		}
	}
	return false
}

// describe says what a non-OS manifest is, for error messages.
func describe(doc document) string {
	cfg := "none"
	if doc.Config != nil {
		cfg = strconv.Quote(doc.Config.MediaType)
	}
	types := map[string]bool{}
	for _, l := range doc.Layers {
		types[l.MediaType] = true
	}
	var ts []string
	for t := range types {
		ts = append(ts, strconv.Quote(t))
	}
	sort.Strings(ts)
	return fmt.Sprintf("config type %s, %d layers of types [%s]", cfg, len(doc.Layers), strings.Join(ts, ", "))
}

// verify checks that raw is the content named by d.
func verify(raw []byte, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	if got := d.Algorithm().FromBytes(raw); got != d {
		return fmt.Errorf("content does not match its digest %s (it hashes to %s)", d, got)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
