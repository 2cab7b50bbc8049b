package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestOCILayout mounts, inspects, lists, reads and fetches an image from an
// OCI image layout directory written by go-containerregistry (what crane
// writes) from the image pushed to a registry: the same tree and the same
// bytes as from the registry, every layer checked against its digest
// before any of it is served, a corrupted blob file EIO, and a chunk table
// attached in the layout used as it is from a registry.
func TestOCILayout(t *testing.T) {
	requireMountable(t)
	media := buildMedia(t)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/layout", []layerFile{
		seedLayer("disk.img", media.disk(), "disk.img"),
		seedLayer("squashfs", media.squashfs(), "root.squashfs"),
		seedLayer("iso", media.iso(), "image.iso"),
	})
	regRef := img.ref(reg.Host())
	// A ':' in the directory: DIR is the longest part that is one.
	dir := filepath.Join(t.TempDir(), "layouts:os")
	start := time.Now()
	copyToLayout(t, regRef, dir, "1.0")
	appendSmallImage(t, dir, "small")
	t.Logf("layout written by go-containerregistry in %s", time.Since(start).Round(time.Millisecond))
	ociRef := "oci:" + dir + ":1.0"

	t.Run("inspect: the tree of the registry", func(t *testing.T) {
		files := func(args ...string) []inspectFile {
			out, errOut, code := runCLI(t, time.Minute, append([]string{"inspect", "--json"}, args...)...)
			if code != 0 {
				t.Fatalf("inspect %v: status %d\n%s", args, code, errOut)
			}
			var got struct {
				Files []inspectFile `json:"files"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			return got.Files
		}
		fromReg, fromLayout := files("--plain-http", regRef), files(ociRef)
		if !slices.Equal(fromReg, fromLayout) || len(fromLayout) != 5 {
			t.Fatalf("inspect of the layout:\n%+v\nof the registry:\n%+v", fromLayout, fromReg)
		}
	})

	t.Run("inspect: references that name no single image", func(t *testing.T) {
		notLayout := t.TempDir()
		for _, tc := range []struct {
			ref  string
			code int
			say  string
		}{
			{"oci:" + dir, 2, "its tags: 1.0, small"},
			{"oci:" + dir + ":2.0", 3, `no entry is tagged "2.0"`},
			{"oci:" + dir + "@" + digest.FromString("none").String(), 3, "holds no manifest or index"},
			{"oci:" + filepath.Join(t.TempDir(), "missing") + ":1.0", 3, "no layout directory"},
			{"oci:" + notLayout, 2, notLayout + ": no oci-layout file"},
			{"oci:" + dir + "@sha256:nothex", 2, "is not a digest"},
		} {
			_, errOut, code := runCLI(t, time.Minute, "inspect", tc.ref)
			if code != tc.code || !strings.Contains(errOut, tc.say) || strings.Contains(errOut, "panic") {
				t.Errorf("inspect %s: status %d, want %d saying %q:\n%s", tc.ref, code, tc.code, tc.say, errOut)
			}
		}
		for _, args := range [][]string{{"index", ociRef}, {"profile", "push", ociRef, "boot.json"}} {
			if _, errOut, code := runCLI(t, time.Minute, args...); code != 2 || !strings.Contains(errOut, "read only") {
				t.Errorf("%v: status %d, want 2: a layout is read only\n%s", args, code, errOut)
			}
		}
		if out, errOut, code := runCLI(t, time.Minute, "inspect", "oci:"+dir+"@"+img.digest); code != 0 || !strings.Contains(out, img.digest) {
			t.Errorf("inspect by digest: status %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("mount: the same files and bytes as the registry mount", func(t *testing.T) {
		regDir, ociDir := t.TempDir(), t.TempDir()
		startMount(t, regRef, regDir, "--plain-http")
		// --cache-dir left to its default: none, for a layout.
		m := startMount(t, ociRef, ociDir, "--cache-dir=")
		if strings.Contains(m.stderr.String(), `msg="disk cache"`) {
			t.Errorf("a mount of a layout opened a disk cache:\n%s", m.stderr.String())
		}
		waitLog(t, m, "verification", "disk.img", "mode=blob", `checked="before any of it is served"`)
		regFiles, ociFiles := treeFiles(t, regDir), treeFiles(t, ociDir)
		if !slices.Equal(sortedKeys(regFiles), sortedKeys(ociFiles)) {
			t.Fatalf("files of the layout mount %v, of the registry mount %v", sortedKeys(ociFiles), sortedKeys(regFiles))
		}
		for _, rel := range sortedKeys(regFiles) {
			if regFiles[rel] != ociFiles[rel] {
				t.Errorf("%s: %d bytes from the layout, %d from the registry", rel, ociFiles[rel], regFiles[rel])
				continue
			}
			got, want := sumFile(t, filepath.Join(ociDir, rel)), sumFile(t, filepath.Join(regDir, rel))
			if got != want {
				t.Errorf("%s: sha256 %s from the layout, %s from the registry", rel, got, want)
			}
			if l, ok := img.layers[filepath.Base(rel)]; ok && "sha256:"+got != l.Digest.String() {
				t.Errorf("%s: sha256 %s, the layer pushed is %s", rel, got, l.Digest)
			}
		}
		waitLog(t, m, "blob checked against its digest before serving it", img.layers["disk.img"].Digest.String())
		got, err := os.ReadFile(filepath.Join(ociDir, "amd64/virtualization/root.squashfs.contents", markerName))
		if err != nil || string(got) != media.Markers["squashfs"]+"\n" {
			t.Fatalf("the squashfs marker through the layout mount: %q, %v", got, err)
		}
	})

	t.Run("ls and cat", func(t *testing.T) {
		for _, p := range []string{"", "amd64/virtualization", "amd64/virtualization/image.iso.contents"} {
			regOut, _, regCode := runCLI(t, time.Minute, "ls", "--plain-http", regRef, p)
			ociOut, errOut, code := runCLI(t, time.Minute, "ls", ociRef, p)
			if code != 0 || regCode != 0 || ociOut != regOut {
				t.Errorf("ls %q: status %d\n%s%s\nthe registry's (status %d):\n%s", p, code, ociOut, errOut, regCode, regOut)
			}
		}
		for key, p := range map[string]string{"iso": "image.iso.contents/", "squashfs": "root.squashfs.contents/"} {
			out, errOut, code := runCLI(t, time.Minute, "cat", ociRef, "amd64/virtualization/"+p+markerName)
			if code != 0 || out != media.Markers[key]+"\n" {
				t.Errorf("cat %s%s: status %d, %q\n%s", p, markerName, code, out, errOut)
			}
		}
		regOut, _, _ := runCLI(t, time.Minute, "cat", "--plain-http", regRef, "amd64/virtualization/manifest.json")
		out, errOut, code := runCLI(t, time.Minute, "cat", ociRef, "amd64/virtualization/manifest.json")
		if code != 0 || out != regOut || digest.FromString(out).String() != img.digest {
			t.Errorf("cat manifest.json: status %d, not the manifest pushed\n%s", code, errOut)
		}
	})

	t.Run("fetch into a disk cache", func(t *testing.T) {
		cacheDir := t.TempDir()
		out, errOut, code := runCLI(t, 5*time.Minute, "fetch", "--cache-dir", cacheDir, ociRef)
		if code != 0 || !strings.Contains(out, "total: 3 of 3 layers complete") {
			t.Fatalf("fetch: status %d\n%s%s", code, out, errOut)
		}
		for _, l := range img.layers {
			if n, verified := cachedOf(t, cacheDir, l.Digest, l.Size); n != l.Size || !verified {
				t.Errorf("%s: %d of %d bytes in the cache, verified %v", l.Digest, n, l.Size, verified)
			}
		}
		// A mount on that cache reads from it.
		mnt := t.TempDir()
		startMount(t, ociRef, mnt, "--cache-dir", cacheDir)
		if got := sumFile(t, filepath.Join(mnt, "amd64/virtualization/image.iso")); "sha256:"+got != img.layers["image.iso"].Digest.String() {
			t.Errorf("image.iso through a mount on the fetched cache: sha256 %s", got)
		}
		if _, errOut, code := runCLI(t, time.Minute, "fetch", "--cache-dir", "none", ociRef); code != 2 {
			t.Errorf("fetch --cache-dir none: status %d, want 2\n%s", code, errOut)
		}
	})

	t.Run("a corrupted blob file is EIO", func(t *testing.T) {
		iso, sq := img.layers["image.iso"], img.layers["root.squashfs"]
		bad := linkLayout(t, dir, iso.Digest, sq.Digest)
		flipByte(t, blobFile(bad, iso.Digest), iso.Size/2)
		mnt := t.TempDir()
		m := startMount(t, "oci:"+bad+":1.0", mnt, "--cache-dir=")
		isoPath := filepath.Join(mnt, "amd64/virtualization/image.iso")
		for range 2 {
			// At once: not at the read timeout (60 s).
			t0 := time.Now()
			_, err := readAt(isoPath, 0, 4096)
			if took := time.Since(t0); !errors.Is(err, syscall.EIO) || took > 10*time.Second {
				t.Fatalf("read of a blob that does not match its digest: %v after %s, want EIO at once", err, took)
			}
		}
		waitLog(t, m, "blob failed its check before any of it was served", iso.Digest.String())

		// Bytes changed after the layer was checked fail by the table
		// made while checking it.
		sqPath := filepath.Join(mnt, "amd64/virtualization/root.squashfs")
		want := readFileAt(t, media.squashfs(), 0, 4096)
		if got, err := readAt(sqPath, 0, 4096); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("first read of root.squashfs: %v", err)
		}
		const at = 8<<20 + 100
		flipByte(t, blobFile(bad, sq.Digest), at)
		if _, err := readAt(sqPath, at&^4095, 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("read of bytes changed after the check: %v, want EIO", err)
		}
		waitLog(t, m, "fetched bytes failed their check twice", sq.Digest.String())
		if got, err := readAt(sqPath, 2<<20, 4096); err != nil || !bytes.Equal(got, readFileAt(t, media.squashfs(), 2<<20, 4096)) {
			t.Fatalf("read of unchanged bytes: %v", err)
		}
		if _, errOut, code := runCLI(t, time.Minute, "cat", "oci:"+bad+":1.0", "amd64/virtualization/image.iso"); code == 0 || !strings.Contains(errOut, "does not match its digest") {
			t.Errorf("cat of the corrupted image.iso: status %d\n%s", code, errOut)
		}
	})

	t.Run("a chunk table attached in the layout checks pieces", func(t *testing.T) {
		if out, errOut, code := runCLI(t, 5*time.Minute, "index", "--plain-http", "--quiet", regRef); code != 0 {
			t.Fatalf("index: status %d\n%s%s", code, out, errOut)
		}
		withTables := linkLayout(t, dir)
		n := copyReferrers(t, regRef, withTables)
		mnt := t.TempDir()
		m := startMount(t, "oci:"+withTables+":1.0", mnt, "--cache-dir=")
		waitLog(t, m, "verification", "disk.img", "mode=pieces", "referrer")
		const at = 100 << 20
		if got, err := readAt(filepath.Join(mnt, "amd64/virtualization/disk.img"), at, 64<<10); err != nil || !bytes.Equal(got, readFileAt(t, media.disk(), at, 64<<10)) {
			t.Fatalf("read of disk.img: %v", err)
		}
		if strings.Contains(m.stderr.String(), "blob checked against its digest before serving it") {
			t.Errorf("a layer with a chunk table was hashed whole first:\n%s", m.stderr.String())
		}
		t.Logf("%d referrers copied into the layout", n)
	})
}

// inspectFile is a file of inspect --json, as compared here.
type inspectFile struct {
	Path, Role, MediaType, Digest string
	Size                          int64
}

// copyToLayout writes the image ref of a plain-HTTP registry into a new
// OCI image layout dir, tagged tag, with go-containerregistry (as crane
// does).
func copyToLayout(t *testing.T, ref, dir, tag string) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	src, err := remote.Image(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ggcrlayout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(src, ggcrlayout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: tag})); err != nil {
		t.Fatal(err)
	}
}

// appendSmallImage adds a small OS image (a kernel) to the layout at dir,
// tagged tag.
func appendSmallImage(t *testing.T, dir, tag string) {
	t.Helper()
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer([]byte("a small kernel\n"), "application/vnd.OpenKCM.image.kernel")})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), "application/vnd.OpenKCM.image.config.v1+json")
	p, err := ggcrlayout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, ggcrlayout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: tag})); err != nil {
		t.Fatal(err)
	}
}

// copyReferrers copies the referrers of the registry image ref (a digest
// reference) into the layout at dir, untagged, and says how many.
func copyReferrers(t *testing.T, ref, dir string) int {
	t.Helper()
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ggcrlayout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		refImg, err := remote.Image(d.Context().Digest(desc.Digest.String()), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(refImg); err != nil {
			t.Fatal(err)
		}
	}
	if len(im.Manifests) == 0 {
		t.Fatalf("the image %s has no referrers", ref)
	}
	return len(im.Manifests)
}

// linkLayout makes a new layout with the blob files of the one at src
// hard-linked, but those of copies, which are copied (to be changed), and
// its other files copied; it returns its directory.
func linkLayout(t *testing.T, src string, copies ...digest.Digest) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "layout")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		isBlob := strings.HasPrefix(rel, "blobs"+string(filepath.Separator))
		if isBlob && !slices.ContainsFunc(copies, func(c digest.Digest) bool { return c.Encoded() == filepath.Base(p) }) {
			return os.Link(p, to)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// blobFile is the file of blob d in the layout at dir.
func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// flipByte changes the byte at off of the file at p, in place.
func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// readFileAt reads n bytes at off of a local file.
func readFileAt(t *testing.T, p string, off int64, n int) []byte {
	t.Helper()
	b, err := readAt(p, off, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeFiles maps the regular files of a mount (outside .contents
// directories) to their sizes, by path relative to it.
func treeFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err := skipContents(d, err); err != nil || d.IsDir() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = st.Size()
		return nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("walk %s: %w", dir, err))
	}
	return out
}
