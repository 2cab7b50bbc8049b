package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

const testCmdline = "console=ttyS0 root=LABEL=ROOT ro"

var openKCMTypes = map[image.Role]string{
	image.RoleDisk:      "application/vnd.OpenKCM.image.disk.img",
	image.RoleKernel:    "application/vnd.OpenKCM.image.kernel",
	image.RoleInitramfs: "application/vnd.OpenKCM.image.initramfs",
	image.RoleSquashfs:  "application/vnd.OpenKCM.image.squashfs",
	image.RoleCmdline:   "application/vnd.OpenKCM.image.cmdline",
	image.RoleUKI:       "application/vnd.OpenKCM.image.uki",
	image.RoleISO:       "application/vnd.OpenKCM.image.iso",
}

// checkManifest asserts everything about one pushed OpenKCM manifest: its
// fields, config, annotations, and that every layer's bytes are the file's.
func checkManifest(t *testing.T, e env, d digest.Digest, arch, variant string, files Files, cmdline string) {
	t.Helper()
	ctx := fixture.Context(t, testTimeout)
	m, raw := e.cl.manifest(ctx, d)
	if m.SchemaVersion != 2 || m.MediaType != image.MediaTypeOCIManifest || m.ArtifactType != image.MediaTypeSeedArtifacts {
		t.Errorf("manifest %s: schemaVersion %d, mediaType %q, artifactType %q", d, m.SchemaVersion, m.MediaType, m.ArtifactType)
	}
	wantAnn := map[string]string{AnnotationVariant: variant, AnnotationArchitecture: arch}
	for k, v := range wantAnn {
		if m.Annotations[k] != v {
			t.Errorf("manifest annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if m.Annotations[AnnotationTitle] == "" {
		t.Errorf("manifest has no %s annotation: %s", AnnotationTitle, raw)
	}

	if m.Config.MediaType != image.MediaTypeSeedConfig {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	var cfg struct {
		CommandLine string `json:"commandLine"`
	}
	if err := json.Unmarshal(e.cl.blob(ctx, m.Config.Digest), &cfg); err != nil {
		t.Fatalf("parse config: %v", err)
	}
	if cfg.CommandLine != cmdline {
		t.Errorf("config commandLine = %q, want %q", cfg.CommandLine, cmdline)
	}

	wantOrder := []image.Role{image.RoleDisk, image.RoleKernel, image.RoleInitramfs, image.RoleSquashfs, image.RoleCmdline, image.RoleUKI, image.RoleISO}
	var gotOrder []image.Role
	for _, l := range checkTables(t, e, m, files) {
		role := image.RoleOf(l.MediaType)
		gotOrder = append(gotOrder, role)
		if want := openKCMTypes[role]; l.MediaType != want {
			t.Errorf("%s layer media type %q, want %q", role, l.MediaType, want)
		}
		if title := l.Annotations[AnnotationTitle]; title != role.FileName() {
			t.Errorf("layer %s: title %q, want %q", l.MediaType, title, role.FileName())
		}
		body := e.cl.blob(ctx, l.Digest)
		if int64(len(body)) != l.Size || digest.FromBytes(body) != l.Digest {
			t.Errorf("layer %s: registry has %d bytes hashing to %s, descriptor says %d and %s", role, len(body), digest.FromBytes(body), l.Size, l.Digest)
		}
		if role == image.RoleCmdline {
			if string(body) != cmdline {
				t.Errorf("cmdline layer = %q, want %q", body, cmdline)
			}
			continue
		}
		want, err := os.ReadFile(pathFor(files, role))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("layer %s: bytes differ from file %s", role, pathFor(files, role))
		}
	}
	if !slices.Equal(gotOrder, wantOrder) {
		t.Errorf("layer roles %v, want %v", gotOrder, wantOrder)
	}
}

func TestPushTwoPlatformsAddToIndex(t *testing.T) {
	ctx := fixture.Context(t, testTimeout)
	e := newEnv(t, "os/multi")
	filesByArch := map[string]Files{"amd64": sampleFiles(t), "arm64": sampleFiles(t)}

	results := map[string]*Result{}
	for _, arch := range []string{"amd64", "arm64"} {
		o := e.options("1.0", arch, filesByArch[arch])
		o.Variant = "virtualization"
		o.CommandLine = testCmdline + "\n" // as read from a file: trimmed
		o.AddToIndex = true
		res, err := Push(ctx, o)
		if err != nil {
			t.Fatalf("push %s: %v", arch, err)
		}
		results[arch] = res
		if len(res.Replaced) != 0 {
			t.Errorf("push %s replaced %v", arch, res.Replaced)
		}
	}

	idx, raw := e.cl.index(ctx, "1.0")
	if got := digest.FromBytes(raw); got != results["arm64"].Index {
		t.Errorf("index at the tag is %s, the second push returned %s", got, results["arm64"].Index)
	}
	if want := e.reg.Host() + "/os/multi@" + results["arm64"].Index.String(); results["arm64"].Reference != want {
		t.Errorf("Reference = %q, want %q", results["arm64"].Reference, want)
	}
	if idx.MediaType != image.MediaTypeOCIIndex || idx.SchemaVersion != 2 {
		t.Errorf("index mediaType %q schemaVersion %d", idx.MediaType, idx.SchemaVersion)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("index has %d entries, want 2: %s", len(idx.Manifests), raw)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		en := idx.Manifests[i]
		if en.Platform == nil || en.Platform.OS != "linux" || en.Platform.Architecture != arch {
			t.Errorf("entry %d platform %+v, want linux/%s", i, en.Platform, arch)
		}
		if en.Digest != results[arch].Manifest || en.MediaType != image.MediaTypeOCIManifest || en.ArtifactType != image.MediaTypeSeedArtifacts {
			t.Errorf("entry %d: %+v", i, en)
		}
		if en.Annotations[AnnotationVariant] != "virtualization" {
			t.Errorf("entry %d variant annotation %q", i, en.Annotations[AnnotationVariant])
		}
		checkManifest(t, e, en.Digest, arch, "virtualization", filesByArch[arch], testCmdline)
	}

	// What the mount would show.
	store, err := blobstore.Open(ctx, e.reg.Host()+"/os/multi:1.0", blobstore.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := store.Resolve(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range tree.Files {
		paths = append(paths, f.Path)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, name := range []string{"manifest.json", "config.json", "disk.img", "kernel", "initramfs", "root.squashfs", "cmdline", "uki.efi", "image.iso"} {
			if p := arch + "/virtualization/" + name; !slices.Contains(paths, p) {
				t.Errorf("the mount would not show %s; it shows %v", p, paths)
			}
		}
	}
	if len(tree.Warnings) != 0 {
		t.Errorf("resolve warnings: %v", tree.Warnings)
	}
}

func TestPushAgainUploadsNothing(t *testing.T) {
	ctx := fixture.Context(t, testTimeout)
	e := newEnv(t, "os/again")
	files := sampleFiles(t)
	o := e.options("v1", "amd64", files)
	o.CommandLine = testCmdline
	o.AddToIndex = true
	rec := newRecorder()
	o.Progress = rec

	first, err := Push(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	// 6 files, cmdline, config, and the chunk tables of the 5 files larger
	// than one piece (the UKI is exactly one).
	const blobs = 8 + 5
	if n := e.ct.count("POST upload"); n != blobs {
		t.Errorf("first push: %d upload POSTs, want %d", n, blobs)
	}
	if len(first.Tables) != 5 {
		t.Errorf("first push: %d chunk tables, want 5", len(first.Tables))
	}
	if len(first.Uploaded) != blobs || len(first.Skipped) != 0 {
		t.Errorf("first push: uploaded %d, skipped %d", len(first.Uploaded), len(first.Skipped))
	}
	for _, rf := range files.list() {
		fi, _ := os.Stat(rf.path)
		for _, step := range []Step{StepHash, StepUpload} {
			key := string(step) + " " + string(rf.role)
			if got := rec.bytes[key]; got != fi.Size() {
				t.Errorf("progress %s: %d bytes, want %d", key, got, fi.Size())
			}
			if err, ok := rec.finished[key]; !ok || err != nil {
				t.Errorf("progress %s: finished %v, %v", key, ok, err)
			}
		}
	}
	if slices.Contains(rec.events, "overlap") {
		t.Errorf("progress calls overlapped: %v", rec.events)
	}

	e.ct.reset()
	rec2 := newRecorder()
	o.Progress = rec2
	second, err := Push(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"POST upload", "PATCH upload", "PUT upload"} {
		if n := e.ct.count(k); n != 0 {
			t.Errorf("second push: %d %s requests, want 0", n, k)
		}
	}
	if n := e.ct.count("HEAD blob"); n != blobs {
		t.Errorf("second push: %d blob HEADs, want %d", n, blobs)
	}
	if len(second.Uploaded) != 0 || len(second.Skipped) != blobs {
		t.Errorf("second push: uploaded %v, skipped %d", second.Uploaded, len(second.Skipped))
	}
	if second.Index != first.Index || second.Manifest != first.Manifest {
		t.Errorf("second push gave index %s manifest %s, first %s %s", second.Index, second.Manifest, first.Index, first.Manifest)
	}
	if len(second.Replaced) != 0 {
		t.Errorf("second push replaced %v", second.Replaced)
	}
	if len(rec2.exists) != 6 {
		t.Errorf("second push: Exists for %v, want the 6 files", rec2.exists)
	}
	for k := range rec2.bytes {
		if strings.HasPrefix(k, string(StepUpload)) {
			t.Errorf("second push reported upload progress for %s", k)
		}
	}
}

func TestPushReplacesSamePlatform(t *testing.T) {
	ctx := fixture.Context(t, testTimeout)
	e := newEnv(t, "os/replace")
	push := func(arch, variant string, add bool) *Result {
		t.Helper()
		dir := t.TempDir()
		o := e.options("latest", arch, Files{Kernel: writeRandom(t, dir, "k", 4096)})
		o.Variant = variant
		o.AddToIndex = add
		res, err := Push(ctx, o)
		if err != nil {
			t.Fatalf("push %s/%s: %v", arch, variant, err)
		}
		return res
	}
	entries := func() []string {
		idx, _ := e.cl.index(ctx, "latest")
		var out []string
		for _, m := range idx.Manifests {
			out = append(out, m.Platform.Architecture+"/"+m.Annotations[AnnotationVariant]+"@"+m.Digest.String())
		}
		return out
	}

	a := push("amd64", "metal", true)
	b := push("amd64", "virtualization", true) // another variant: added
	c := push("amd64", "metal", true)          // same platform: replaces a, in place
	want := []string{"amd64/metal@" + c.Manifest.String(), "amd64/virtualization@" + b.Manifest.String()}
	if got := entries(); !slices.Equal(got, want) {
		t.Errorf("after replace: %v, want %v", got, want)
	}
	if !slices.Equal(c.Replaced, []digest.Digest{a.Manifest}) {
		t.Errorf("Replaced = %v, want [%s]", c.Replaced, a.Manifest)
	}

	d := push("arm64", "metal", false) // without AddToIndex: a fresh index
	if got, want := entries(), []string{"arm64/metal@" + d.Manifest.String()}; !slices.Equal(got, want) {
		t.Errorf("without add-to-index: %v, want %v", got, want)
	}
}

func TestPushIronCoreFormat(t *testing.T) {
	ctx := fixture.Context(t, testTimeout)
	e := newEnv(t, "os/ironcore")
	files := sampleFiles(t)
	o := e.options("1", "arm64", files)
	o.Format = FormatIronCore
	o.CommandLine = testCmdline
	res, err := Push(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	m, raw := e.cl.manifest(ctx, res.Manifest)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["mediaType"]; ok {
		t.Errorf("IronCore manifest has a mediaType field: %s", raw)
	}
	if _, ok := fields["artifactType"]; ok {
		t.Errorf("IronCore manifest has an artifactType field: %s", raw)
	}
	if m.Config.MediaType != image.MediaTypeIronCoreConfig {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	if got := string(e.cl.blob(ctx, m.Config.Digest)); got != `{"commandLine":"`+testCmdline+`"}` {
		t.Errorf("config = %s", got)
	}
	want := map[string]image.Role{
		"application/vnd.ironcore.image.rootfs":    image.RoleDisk,
		"application/vnd.ironcore.image.kernel":    image.RoleKernel,
		"application/vnd.ironcore.image.initramfs": image.RoleInitramfs,
		"application/vnd.ironcore.image.squashfs":  image.RoleSquashfs,
		"application/vnd.ironcore.image.uki":       image.RoleUKI,
		"application/vnd.ironcore.image.iso":       image.RoleISO,
	}
	layers := checkTables(t, e, m, files)
	if len(layers) != len(want) {
		t.Errorf("%d layers, want %d (no cmdline layer)", len(layers), len(want))
	}
	for _, l := range layers {
		role, ok := want[l.MediaType]
		if !ok {
			t.Errorf("unexpected layer type %q", l.MediaType)
			continue
		}
		if fileDigest(t, pathFor(files, role)) != l.Digest {
			t.Errorf("layer %s digest differs from the file's", l.MediaType)
		}
	}

	// The mount shows the command line from the config.
	store, err := blobstore.Open(ctx, e.reg.Host()+"/os/ironcore:1", blobstore.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := store.Resolve(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range tree.Files {
		if f.Path == "arm64/default/cmdline" {
			found = string(f.Data) == testCmdline
		}
	}
	if !found {
		t.Errorf("the mount would not show arm64/default/cmdline = %q", testCmdline)
	}
}

func TestPushUsageErrors(t *testing.T) {
	e := newEnv(t, "os/usage")
	files := sampleFiles(t)
	missing := files
	missing.Kernel = "/nonexistent/vmlinuz"
	dirAsFile := files
	dirAsFile.ISO = t.TempDir()

	tests := []struct {
		name  string
		edit  func(*Options)
		check func(t *testing.T, err error)
	}{
		{"missing file", func(o *Options) { o.Files = missing }, func(t *testing.T, err error) {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Role != image.RoleKernel || fe.Path != missing.Kernel || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("err = %v, want a FileError for the kernel", err)
			}
			if msg := err.Error(); !strings.Contains(msg, "--kernel") || !strings.Contains(msg, "/nonexistent/vmlinuz") {
				t.Errorf("message %q does not name the flag and the path", msg)
			}
		}},
		{"directory", func(o *Options) { o.Files = dirAsFile }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "--iso") || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("err = %v", err)
			}
		}},
		{"no files", func(o *Options) { o.Files = Files{}; o.CommandLine = "quiet" }, func(t *testing.T, err error) {
			if !errors.Is(err, ErrNoFiles) {
				t.Errorf("err = %v, want ErrNoFiles", err)
			}
		}},
		{"uname arch", func(o *Options) { o.Architecture = "x86_64" }, func(t *testing.T, err error) {
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != "arch" || !strings.Contains(err.Error(), "did you mean amd64") {
				t.Errorf("err = %v", err)
			}
		}},
		{"no arch", func(o *Options) { o.Architecture = "" }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "--arch") {
				t.Errorf("err = %v", err)
			}
		}},
		{"bad variant", func(o *Options) { o.Variant = "../x" }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "--variant") {
				t.Errorf("err = %v", err)
			}
		}},
		{"bad format", func(o *Options) { o.Format = "docker" }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "--format") {
				t.Errorf("err = %v", err)
			}
		}},
		{"digest reference", func(o *Options) { o.Reference = e.reg.Host() + "/os/usage@" + digest.FromString("x").String() }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "tag") {
				t.Errorf("err = %v", err)
			}
		}},
		{"ca file", func(o *Options) { o.Transport = nil; o.CAFile = "/nonexistent/ca.pem" }, func(t *testing.T, err error) {
			if !strings.Contains(err.Error(), "--ca-file") {
				t.Errorf("err = %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.ct.reset()
			o := e.options("x", "amd64", files)
			tc.edit(&o)
			_, err := Push(fixture.Context(t, testTimeout), o)
			if err == nil {
				t.Fatal("Push succeeded")
			}
			if !IsUsage(err) {
				t.Errorf("IsUsage(%v) = false", err)
			}
			tc.check(t, err)
			if n := e.ct.total(); n != 0 {
				t.Errorf("%d requests were sent for a usage error", n)
			}
		})
	}
}

func TestPushRegistryUnreachable(t *testing.T) {
	e := newEnv(t, "os/down")
	e.reg.Stop()
	o := e.options("1", "amd64", Files{Kernel: writeRandom(t, t.TempDir(), "k", 10)})
	_, err := Push(fixture.Context(t, testTimeout), o)
	if !errors.Is(err, blobstore.ErrUnreachable) || IsUsage(err) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

// TestPushRefusesPlainHTTP: without PlainHTTP, a push to a plain-HTTP
// registry on 127.0.0.1 (where go-containerregistry falls back to HTTP)
// fails with blobstore.ErrPlainHTTP, and no request reaches the registry;
// with PlainHTTP it goes through.
func TestPushRefusesPlainHTTP(t *testing.T) {
	reg := registrytest.StartSecure(t, registrytest.SecureOptions{})
	o := Options{
		Reference:    reg.Host() + "/os/plain:1",
		Architecture: "amd64",
		Files:        Files{Kernel: writeRandom(t, t.TempDir(), "k", 10)},
	}
	_, err := Push(fixture.Context(t, testTimeout), o)
	if !errors.Is(err, blobstore.ErrPlainHTTP) || IsUsage(err) || !strings.Contains(err.Error(), "--plain-http") {
		t.Errorf("err = %v, want a refused plain-HTTP request naming --plain-http", err)
	}
	t.Logf("refused: %v", err)
	if all, _, _ := reg.Requests(); all != 0 {
		t.Errorf("%d requests reached the plain-HTTP registry without PlainHTTP", all)
	}

	o.PlainHTTP = true
	if _, err := Push(fixture.Context(t, testTimeout), o); err != nil {
		t.Fatalf("push with PlainHTTP: %v", err)
	}
	if all, _, _ := reg.Requests(); all == 0 {
		t.Error("no request reached the registry with PlainHTTP")
	}
}

// TestPushDeniedIsClassified checks that a 401 from the registry maps onto
// blobstore.ErrUnauthorized and says what was being done.
func TestPushDeniedIsClassified(t *testing.T) {
	e := newEnv(t, "os/denied")
	o := e.options("1", "amd64", Files{Kernel: writeRandom(t, t.TempDir(), "k", 10)})
	o.Transport = denyManifestPut{base: e.ct}
	_, err := Push(fixture.Context(t, testTimeout), o)
	if !errors.Is(err, blobstore.ErrUnauthorized) || !strings.Contains(err.Error(), "put manifest") {
		t.Fatalf("err = %v, want ErrUnauthorized while putting the manifest", err)
	}
}

// denyManifestPut answers 403 to manifest PUTs.
type denyManifestPut struct{ base http.RoundTripper }

func (d denyManifestPut) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
		body := `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`
		return &http.Response{
			StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:  http.Header{"Content-Type": {"application/json"}},
			Body:    io.NopCloser(strings.NewReader(body)),
			Request: r,
		}, nil
	}
	return d.base.RoundTrip(r)
}

// TestAddToSingleManifest: a tag holding a single OS manifest (pushed by
// another tool) becomes the first entry of the index.
func TestAddToSingleManifest(t *testing.T) {
	ctx := fixture.Context(t, testTimeout)
	e := newEnv(t, "os/single")
	// Push amd64 and then point the tag at its manifest alone.
	o := e.options("t", "amd64", Files{Kernel: writeRandom(t, t.TempDir(), "k", 100)})
	first, err := Push(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	_, raw := e.cl.manifest(ctx, first.Manifest)
	if _, err := registrytest.PutManifest(ctx, e.reg.Host(), "os/single", "t", image.MediaTypeOCIManifest, raw); err != nil {
		t.Fatal(err)
	}

	o = e.options("t", "arm64", Files{Kernel: writeRandom(t, t.TempDir(), "k", 100)})
	o.AddToIndex = true
	second, err := Push(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := e.cl.index(ctx, "t")
	var got []string
	for _, m := range idx.Manifests {
		got = append(got, m.Platform.OS+"/"+m.Platform.Architecture+"@"+m.Digest.String())
	}
	want := []string{"linux/amd64@" + first.Manifest.String(), "linux/arm64@" + second.Manifest.String()}
	if !slices.Equal(got, want) {
		t.Errorf("index %v, want %v", got, want)
	}
}
