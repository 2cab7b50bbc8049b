package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The OS media that TestBootFromMount boots and TestBrowseMounted browses:
// a 1 GiB ext4 disk that is mostly random files nobody reads, a squashfs and
// an ISO of a few MiB, each with a small marker file at its root holding a
// random line.
const (
	mediaDiskSize  = 1 << 30   // disk.img
	mediaDiskData  = 900 << 20 // random files inside it
	mediaDiskFiles = 72
	mediaSqData    = 12 << 20
	mediaSqFiles   = 24
	mediaISOData   = 16 << 20
	mediaISOFiles  = 10
	markerName     = fixture.MarkerName

	// mediaVersion starts the names of cache entries (see buildMedia).
	mediaVersion = "media-v1"
)

// osMedia is the disk, squashfs and ISO, and what is inside them.
type osMedia struct {
	dir     string // holds disk.img, root.squashfs, image.iso, meta.json
	reused  bool   // found in the cache rather than built by this run
	built   time.Duration
	Markers map[string]string            `json:"markers"` // "disk", "squashfs", "iso" -> the marker file's content
	Sums    map[string]map[string]string `json:"sums"`    // same keys -> path -> sha256, as fixture.TreeSums gives
	Sizes   map[string]int64             `json:"sizes"`   // file name -> size
}

func (m *osMedia) disk() string     { return filepath.Join(m.dir, "disk.img") }
func (m *osMedia) squashfs() string { return filepath.Join(m.dir, "root.squashfs") }
func (m *osMedia) iso() string      { return filepath.Join(m.dir, "image.iso") }

var (
	mediaOnce sync.Once
	mediaVal  *osMedia
	mediaErr  error
)

// buildMedia returns the media, built at most once per test binary run.
//
// Building them takes a while (900 MiB of random files, mkfs.ext4 -d), so
// they are kept between runs in <repo>/.cache/e2e/<mediaVersion>-<key>, a
// git-ignored directory, where key hashes the sizes and the source of the
// code that builds them. They are built in a temporary directory beside
// it, whose source trees are removed as soon as each image is made, and
// renamed into place only when complete, so an interrupted or concurrent
// run never sees half an entry. Entries of other keys are removed once
// unused for an hour. Set OSIMAGEFS_E2E_REBUILD=1 to build afresh.
func buildMedia(t *testing.T) *osMedia {
	t.Helper()
	fixture.RequireTools(t, "mkfs.ext4", "mksquashfs", "xorriso")
	mediaOnce.Do(func() { mediaVal, mediaErr = loadOrMakeMedia() })
	if mediaErr != nil {
		t.Fatalf("build OS media: %v", mediaErr)
	}
	if mediaVal.reused {
		t.Logf("media: %s, from an earlier run", mediaVal.dir)
	} else {
		t.Logf("media: %s, built by this run in %s", mediaVal.dir, mediaVal.built.Round(time.Millisecond))
	}
	return mediaVal
}

// repoRoot is the module root, two levels above this package's directory
// (the working directory of its tests).
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root %s: %w", root, err)
	}
	return root, nil
}

func loadOrMakeMedia() (*osMedia, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	cacheDir := filepath.Join(root, ".cache", "e2e")
	// The key covers the sizes and the code that builds the media.
	h := sha256.New()
	fmt.Fprintf(h, "%s disk=%d/%d/%d sq=%d/%d iso=%d/%d\n", mediaVersion,
		mediaDiskSize, mediaDiskData, mediaDiskFiles, mediaSqData, mediaSqFiles, mediaISOData, mediaISOFiles)
	for _, f := range []string{"media_test.go", "../fixture/media.go", "../fixture/ext4.go", "../fixture/squashfs.go", "../fixture/iso.go", "../fixture/random.go", "../fixture/tree.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		h.Write(src)
	}
	name := mediaVersion + "-" + hex.EncodeToString(h.Sum(nil)[:6])
	final := filepath.Join(cacheDir, name)

	if os.Getenv("OSIMAGEFS_E2E_REBUILD") == "" {
		if m, err := loadMedia(final); err == nil {
			m.reused = true
			markUsed(final)
			return m, nil
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	pruneMediaCache(cacheDir, name)
	tmp, err := os.MkdirTemp(cacheDir, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	out := filepath.Join(tmp, "out")
	m, err := makeMedia(context.Background(), filepath.Join(tmp, "src"), out)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(out, final); err != nil {
		// Another run may have won the race with the same recipe.
		if m2, err2 := loadMedia(final); err2 == nil {
			m2.reused = true
			return m2, nil
		}
		return nil, fmt.Errorf("install media in cache: %w", err)
	}
	m.dir = final
	m.built = time.Since(start)
	return m, nil
}

// loadMedia reads an entry of the cache and checks that its files are all
// there with the sizes it recorded.
func loadMedia(dir string) (*osMedia, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	m := &osMedia{dir: dir}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("%s/meta.json: %w", dir, err)
	}
	for _, f := range []string{"disk.img", "root.squashfs", "image.iso"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		if want, ok := m.Sizes[f]; !ok || st.Size() != want {
			return nil, fmt.Errorf("%s/%s: size %d, recorded %d", dir, f, st.Size(), want)
		}
	}
	for _, k := range []string{"disk", "squashfs", "iso"} {
		if m.Markers[k] == "" || len(m.Sums[k]) == 0 {
			return nil, fmt.Errorf("%s/meta.json: nothing recorded for %s", dir, k)
		}
	}
	return m, nil
}

// markUsed records that a run uses the cache entry dir now.
func markUsed(dir string) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(dir, "meta.json"), now, now)
}

// pruneMediaCache removes the entries of other keys that no run has used
// for an hour (a run of another version of this code may be using one
// right now), and build directories left by runs that died.
func pruneMediaCache(cacheDir, keep string) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	stale := func(p string) bool {
		st, err := os.Stat(p)
		return err != nil || time.Since(st.ModTime()) > time.Hour
	}
	for _, e := range entries {
		n, p := e.Name(), filepath.Join(cacheDir, e.Name())
		switch {
		case n == keep:
		case strings.HasPrefix(n, "media-") && stale(filepath.Join(p, "meta.json")):
			_ = os.RemoveAll(p)
		case strings.HasPrefix(n, ".build-") && stale(p):
			_ = os.RemoveAll(p)
		}
	}
}

// makeMedia builds the three images into out from random trees written
// under src (fixture.MakeMedia), and records their markers, sums and sizes
// in out/meta.json.
func makeMedia(ctx context.Context, src, out string) (*osMedia, error) {
	spec := fixture.DefaultMedia
	spec.DiskSize, spec.DiskData, spec.DiskFiles = mediaDiskSize, mediaDiskData, mediaDiskFiles
	spec.SqData, spec.SqFiles, spec.ISOData, spec.ISOFiles = mediaSqData, mediaSqFiles, mediaISOData, mediaISOFiles
	fm, err := fixture.MakeMedia(ctx, src, out, spec)
	if err != nil {
		return nil, err
	}
	m := &osMedia{dir: out, Markers: fm.Markers, Sums: fm.Sums, Sizes: fm.Sizes}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, "meta.json"), raw, 0o644); err != nil {
		return nil, err
	}
	return m, nil
}

// treeDiff describes how got differs from want ("" when equal), naming at
// most a few paths.
func treeDiff(got, want map[string]string) string {
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, p+": missing")
		} else if g != w {
			diffs = append(diffs, p+": sha256 "+g+", want "+w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, p+": unexpected")
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("and %d more", len(diffs)-10))
	}
	return strings.Join(diffs, "; ")
}

// mediaImage is an image pushed to a registry: its repository, manifest
// digest and layers by tree file name.
type mediaImage struct {
	repo, digest string
	layers       map[string]ocispec.Descriptor
}

// ref is the image's reference on the registry (or proxy) at host.
func (i mediaImage) ref(host string) string { return host + "/" + i.repo + "@" + i.digest }

// pushMediaImage pushes layers as a seed-format amd64 "virtualization"
// image (standard OCI manifest with the seed's artifactType) to repo.
func pushMediaImage(t *testing.T, host, repo string, layers []layerFile) mediaImage {
	t.Helper()
	start := time.Now()
	exp := map[string]expectedFile{}
	const dir = "amd64/virtualization"
	d := pushManifest(t, host, repo, layers, "application/vnd.OpenKCM.image.config.v1+json", []byte(`{}`),
		ocispec.MediaTypeImageManifest, true, map[string]string{"variant": "virtualization", "architecture": "amd64"}, exp, dir)
	var man ocispec.Manifest
	if err := json.Unmarshal(exp[dir+"/manifest.json"].content, &man); err != nil {
		t.Fatal(err)
	}
	img := mediaImage{repo: repo, digest: d.Digest.String(), layers: map[string]ocispec.Descriptor{}}
	for i, l := range layers {
		img.layers[l.name] = man.Layers[i]
	}
	t.Logf("pushed %s@%s (%d layers) in %s", repo, img.digest, len(layers), time.Since(start).Round(time.Millisecond))
	return img
}

// seedLayer is a layer of the seed's media type for role, named name in the tree.
func seedLayer(role, path, name string) layerFile {
	return layerFile{"application/vnd.OpenKCM.image." + role, path, name}
}

// settled waits until c has fetched nothing new for a moment (read-ahead
// and prefetch go on in the background after the read that started them)
// and returns its blob bytes then.
func settled(c *registrytest.Counter) int64 {
	const quiet, most = 300 * time.Millisecond, 15 * time.Second
	n := c.BlobBytes()
	for start := time.Now(); time.Since(start) < most; {
		time.Sleep(quiet)
		m := c.BlobBytes()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// mib formats n bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// pct is n as a percentage of total.
func pct(n, total int64) float64 { return 100 * float64(n) / float64(total) }
