package layout

import (
	"bytes"
	"context"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

// TestWrittenByGoContainerRegistry reads a layout that
// go-containerregistry's layout package wrote (what crane writes): an
// image and an index, each under its tag.
func TestWrittenByGoContainerRegistry(t *testing.T) {
	dir := t.TempDir()
	p, err := ggcrlayout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	kernel, disk := []byte("the kernel"), bytes.Repeat([]byte("a disk "), 10000)
	osImage := func(arch string) v1.Image {
		img, err := mutate.Append(empty.Image,
			mutate.Addendum{Layer: static.NewLayer(kernel, "application/vnd.OpenKCM.image.kernel")},
			mutate.Addendum{Layer: static.NewLayer(disk, "application/vnd.OpenKCM.image.disk.img")})
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.MediaType(image.MediaTypeSeedConfig))
		return mutate.Annotations(img, map[string]string{"architecture": arch, "variant": "metal"}).(v1.Image)
	}
	tag := func(s string) ggcrlayout.Option {
		return ggcrlayout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: s})
	}
	if err := p.AppendImage(osImage("amd64"), tag("1.0")); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: osImage("arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := p.AppendIndex(idx, tag("2.0")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ ref, dir string }{{":1.0", "amd64/metal"}, {":2.0", "arm64/metal"}} {
		t.Run(tc.ref, func(t *testing.T) {
			ref, err := ParseRef(dir + tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			lay, err := Open(context.Background(), ref, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer lay.Close()
			tree, err := lay.Resolve(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]byte{}
			for _, f := range tree.Files {
				if !f.Lazy() {
					continue
				}
				var b []byte
				err := lay.StreamBlob(context.Background(), f.Digest, func(r io.Reader, size int64) error {
					var rerr error
					b, rerr = io.ReadAll(r)
					return rerr
				})
				if err != nil || digest.FromBytes(b) != f.Digest {
					t.Fatalf("%s: %v", f.Path, err)
				}
				got[f.Path] = b
			}
			if !bytes.Equal(got[tc.dir+"/kernel"], kernel) || !bytes.Equal(got[tc.dir+"/disk.img"], disk) || len(got) != 2 {
				t.Fatalf("layers of the tree: %d, want the kernel and disk.img under %s", len(got), tc.dir)
			}
		})
	}
}
