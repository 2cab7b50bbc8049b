package publish

import (
	"context"
	"errors"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// otherTool is an image pushed by another tool (go-containerregistry's
// mutate and remote, as crane would) in IronCore's format, without chunk
// tables: an index of two platforms, each a disk of several pieces and a
// kernel of one piece.
type otherTool struct {
	ref   string                   // host/repo:tag
	disks map[string][]byte        // by architecture
	layer map[string]digest.Digest // disk layer by architecture
}

func pushOtherTool(t *testing.T, host string) otherTool {
	t.Helper()
	o := otherTool{ref: host + "/os/ironcore:1", disks: map[string][]byte{}, layer: map[string]digest.Digest{}}
	idx := v1.ImageIndex(empty.Index)
	for i, arch := range []string{"amd64", "arm64"} {
		disk := fixture.RandomBytes(rand.Uint64(), 1<<20+int(integrity.DefaultPieceSize)/2+i)
		kernel := fixture.RandomBytes(rand.Uint64(), 20<<10)
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, image.MediaTypeIronCoreConfig)
		img, err := mutate.Append(img,
			mutate.Addendum{Layer: static.NewLayer(disk, "application/vnd.ironcore.image.rootfs")},
			mutate.Addendum{Layer: static.NewLayer(kernel, "application/vnd.ironcore.image.kernel")})
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		o.disks[arch] = disk
		o.layer[arch] = digest.FromBytes(disk)
	}
	ref, err := name.ParseReference(o.ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	return o
}

// attachRegistries: Distribution (no referrers API: the fallback tag) and
// go-containerregistry's registry (the API).
func attachRegistries(t *testing.T) map[string]string {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	return map[string]string{"distribution": registrytest.Start(t).Host(), "ggcr": strings.TrimPrefix(srv.URL, "http://")}
}

func attach(t *testing.T, ref string, force bool) ([]Attached, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return AttachTables(ctx, AttachOptions{Reference: ref, Connection: Connection{PlainHTTP: true}, Force: force})
}

// findTables resolves ref and looks its tables up as a mount does.
func findTables(t *testing.T, ref string) (*image.Tree, []integrity.Found) {
	t.Helper()
	ctx := context.Background()
	s, err := blobstore.Open(ctx, ref, blobstore.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := s.Resolve(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	found, warnings, err := integrity.Find(ctx, s, tree.Images)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("Find: %v (warnings %q)", err, warnings)
	}
	return tree, found
}

// TestAttachTables: an image pushed without tables gets a chunk-table
// referrer per manifest; a mount's lookup then finds a table covering
// each disk (and none for the one-piece kernels); a second run does
// nothing; --force publishes the same referrer again.
func TestAttachTables(t *testing.T) {
	for kind, host := range attachRegistries(t) {
		t.Run(kind, func(t *testing.T) {
			img := pushOtherTool(t, host)
			if _, found := findTables(t, img.ref); len(found) != 0 {
				t.Fatalf("before index: %d tables found", len(found))
			}
			res, err := attach(t, img.ref, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 2 {
				t.Fatalf("%d results, want one per manifest: %+v", len(res), res)
			}
			referrers := map[digest.Digest]digest.Digest{}
			for i, a := range res {
				arch := strings.Split(a.Dir, "/")[0]
				if a.Referrer == "" || a.Skipped != "" || a.Tables != 1 || a.Streamed != int64(len(img.disks[arch])) {
					t.Errorf("result %d = %+v, want a referrer of 1 table, %d bytes streamed", i, a, len(img.disks[arch]))
				}
				referrers[a.Manifest] = a.Referrer
			}

			tree, found := findTables(t, img.ref)
			if len(found) != 2 {
				t.Fatalf("after index: %d tables found, want 2 (the disks)", len(found))
			}
			for _, im := range tree.Images {
				arch := strings.Split(im.Dir, "/")[0]
				var ok bool
				for _, f := range found {
					if f.Table.Blob != img.layer[arch] {
						continue
					}
					ok = true
					if err := f.Table.Covers(im.Layers[0]); err != nil {
						t.Errorf("%s: %v", im.Dir, err)
					}
					if want := "referrer " + referrers[im.Digest].String(); f.From != want {
						t.Errorf("%s: From = %q, want %q", im.Dir, f.From, want)
					}
					if err := f.Table.Check(0, img.disks[arch]); err != nil {
						t.Errorf("%s: the disk's own bytes fail its table: %v", im.Dir, err)
					}
					if f.Table.Pieces() < 2 {
						t.Errorf("%s: %d pieces, want several", im.Dir, f.Table.Pieces())
					}
				}
				if !ok {
					t.Errorf("%s: no table for disk %s", im.Dir, img.layer[arch])
				}
			}

			again, err := attach(t, img.ref, false)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range again {
				if a.Referrer != "" || a.Streamed != 0 || !strings.Contains(a.Skipped, referrers[a.Manifest].String()) {
					t.Errorf("rerun: %+v, want skipped naming referrer %s, nothing streamed", a, referrers[a.Manifest])
				}
			}

			forced, err := attach(t, img.ref, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range forced {
				if a.Referrer != referrers[a.Manifest] || a.Streamed == 0 {
					t.Errorf("--force: %+v, want the same referrer %s again, streamed", a, referrers[a.Manifest])
				}
			}
			if _, found := findTables(t, img.ref); len(found) != 2 {
				t.Errorf("after --force: %d tables found, want still 2 (one referrer per manifest)", len(found))
			}
		})
	}
}

// TestAttachTablesBadLayer: a layer whose bytes in the registry do not
// match its digest (damaged storage) fails index, naming the layer, and
// nothing is published, not even for the manifest whose layers are fine.
func TestAttachTablesBadLayer(t *testing.T) {
	reg := registrytest.Start(t)
	img := pushOtherTool(t, reg.Host())
	bad := img.layer["arm64"] // the second manifest: the first one's tables are built before
	data := filepath.Join(reg.Dir(), "docker/registry/v2/blobs/sha256", bad.Encoded()[:2], bad.Encoded(), "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = attach(t, img.ref, false)
	var me *LayerMismatchError
	if !errors.As(err, &me) || me.Layer != bad || !strings.Contains(err.Error(), bad.String()) || !errors.Is(err, blobstore.ErrBadResponse) {
		t.Fatalf("err = %v, want a *LayerMismatchError naming %s", err, bad)
	}
	if _, found := findTables(t, img.ref); len(found) != 0 {
		t.Errorf("%d tables published after a bad layer, want none", len(found))
	}
	ctx := context.Background()
	s, err := blobstore.Open(ctx, img.ref, blobstore.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := s.Resolve(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range tree.Images {
		if refs, err := s.Referrers(ctx, im.Digest, ""); err != nil || len(refs) != 0 {
			t.Errorf("%s: referrers %v, %v; want none", im.Dir, refs, err)
		}
	}
}
