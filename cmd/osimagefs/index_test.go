package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// pushIronCore pushes, with go-containerregistry (another tool), an
// IronCore image of one manifest at ref: a disk of several pieces and a
// one-piece kernel. It returns the disk's digest.
func pushIronCore(t *testing.T, ref string) digest.Digest {
	t.Helper()
	disk := fixture.RandomBytes(rand.Uint64(), 700<<10)
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), image.MediaTypeIronCoreConfig)
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: static.NewLayer(disk, "application/vnd.ironcore.image.rootfs")},
		mutate.Addendum{Layer: static.NewLayer([]byte("a small kernel"), "application/vnd.ironcore.image.kernel")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(disk)
}

// TestIndexCommand: index publishes a referrer and says so on one line;
// run again it skips; a layer damaged in the registry's storage fails it
// with the exit status of other failures, naming the layer.
func TestIndexCommand(t *testing.T) {
	reg := registrytest.Start(t)
	ref := reg.Host() + "/os/ironcore:1"
	disk := pushIronCore(t, ref)

	out, err := execute("index", "--plain-http", ref)
	if err != nil {
		t.Fatalf("index: %v\n%s", err, out)
	}
	published := regexp.MustCompile(`(?m)^unknown/default sha256:[0-9a-f]{64} referrer sha256:[0-9a-f]{64}: 1 chunk table, 700KiB streamed$`)
	if !published.MatchString(out) {
		t.Errorf("output %q, want one line naming the referrer", out)
	}
	out, err = execute("index", "--plain-http", ref)
	if err != nil || !strings.Contains(out, "skipped: it has a chunk-table referrer sha256:") {
		t.Errorf("rerun: %v, output %q; want skipped", err, out)
	}
	out, err = execute("index", "--plain-http", "--force", ref)
	if err != nil || !published.MatchString(out) {
		t.Errorf("--force: %v, output %q; want published again", err, out)
	}

	bad := reg.Host() + "/os/damaged:1"
	disk = pushIronCore(t, bad)
	data := filepath.Join(reg.Dir(), "docker/registry/v2/blobs/sha256", disk.Encoded()[:2], disk.Encoded(), "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[1000] ^= 1
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = execute("index", "--plain-http", bad)
	if code := exitCode(err); code != exitFailure || !strings.Contains(oneLine(err), disk.String()) || strings.Contains(out, "referrer") {
		t.Errorf("damaged layer: exit %d (%v), output %q; want %d naming %s, nothing published", code, err, out, exitFailure, disk)
	}
}
