package image

import (
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestResolveChunkTablesHidden: chunk tables listed after the layers of a
// seed or IronCore manifest change nothing in the tree but manifest.json;
// they are listed in Tree.Images[].Tables, the layers in Layers.
func TestResolveChunkTablesHidden(t *testing.T) {
	for _, format := range []string{"seed", "ironcore"} {
		t.Run(format, func(t *testing.T) {
			build := func(withTables bool) *Tree {
				f := newFake()
				img := addSeed(t, f, format, map[string]string{"architecture": "amd64"})
				layers := img.layers
				mt, cfg := MediaTypeSeedArtifacts, img.cfg
				if format == "ironcore" {
					layers = []ocispec.Descriptor{
						layer(ironcoreType+"rootfs", 5000, format, nil),
						layer(ironcoreType+"kernel", 600, format, nil),
					}
					c := f.addBlob(MediaTypeIronCoreConfig, []byte(`{"commandLine":"`+ironcoreCmdline+`"}`))
					mt, cfg = "", &c
				}
				if withTables {
					for i, l := range layers[:2] {
						tl := layer(MediaTypeChunkTable, int64(100+i), format+"-table", map[string]string{AnnotationChunkTableOf: l.Digest.String()})
						if i == 1 { // a title and odd case change nothing: still a table
							tl.MediaType = "Application/VND.osimagefs.chunktable.v1"
							tl.Annotations[annotationTitle] = "kernel"
						}
						layers = append(layers, tl)
					}
				}
				_, raw := f.addManifest(t, MediaTypeOCIManifest, manifestSpec{
					MediaType: mt, Config: cfg, Layers: layers,
					Annotations: map[string]string{"architecture": "amd64"},
				})
				tree := mustResolve(t, f, topOf(raw, MediaTypeOCIManifest))
				if len(tree.Images) != 1 {
					t.Fatalf("%d images", len(tree.Images))
				}
				im := tree.Images[0]
				n := len(layers)
				if withTables {
					n -= 2
					if len(im.Tables) != 2 || !reflect.DeepEqual(im.Tables, layers[n:]) {
						t.Errorf("Tables = %+v, want the two tables", im.Tables)
					}
				} else if len(im.Tables) != 0 {
					t.Errorf("Tables = %+v without tables", im.Tables)
				}
				if !reflect.DeepEqual(im.Layers, layers[:n]) {
					t.Errorf("Layers = %+v, want %+v", im.Layers, layers[:n])
				}
				if len(tree.Warnings) != 0 {
					t.Errorf("warnings: %v", tree.Warnings)
				}
				return tree
			}
			without, with := build(false), build(true)
			strip := func(fs []File) []File {
				var out []File
				for _, f := range fs {
					if f.Role != RoleManifest {
						out = append(out, f)
					}
				}
				return out
			}
			compareFiles(t, strip(with.Files), strip(without.Files))
			if ps := paths(with); !slices.Contains(ps, "amd64/default/disk.img") || !slices.Contains(ps, "amd64/default/kernel") || !slices.Contains(ps, "amd64/default/cmdline") {
				t.Errorf("the tree lacks a layer: %v", ps)
			}
			if len(with.Files) != len(without.Files) {
				t.Errorf("%d files with tables, %d without", len(with.Files), len(without.Files))
			}
		})
	}
}
