package publish

import (
	"os"
	"reflect"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// checkTables asserts the chunk tables of a pushed manifest: all after the
// real layers, one for each file larger than one piece and none for the
// others, untitled, annotated with the layer they cover, and true to the
// file's bytes. It returns the real layers.
func checkTables(t *testing.T, e env, m ocispec.Manifest, files Files) []ocispec.Descriptor {
	t.Helper()
	ctx := fixture.Context(t, testTimeout)
	n := slices.IndexFunc(m.Layers, func(l ocispec.Descriptor) bool { return image.IsChunkTable(l.MediaType) })
	if n < 0 {
		n = len(m.Layers)
	}
	layers, tables := m.Layers[:n], m.Layers[n:]
	covered := map[string]ocispec.Descriptor{}
	for _, td := range tables {
		if td.MediaType != image.MediaTypeChunkTable {
			t.Errorf("a real layer %s (%s) after the chunk tables", td.Digest, td.MediaType)
			continue
		}
		if _, ok := td.Annotations[ocispec.AnnotationTitle]; ok || len(td.Annotations) != 1 {
			t.Errorf("chunk table %s: annotations %v, want only %s", td.Digest, td.Annotations, image.AnnotationChunkTableOf)
		}
		of := td.Annotations[image.AnnotationChunkTableOf]
		if _, dup := covered[of]; dup {
			t.Errorf("two chunk tables for layer %s", of)
		}
		covered[of] = td
	}
	for _, l := range layers {
		ps := integrity.PieceSizeFor(l.Size)
		td, ok := covered[l.Digest.String()]
		delete(covered, l.Digest.String())
		if l.Size <= ps {
			if ok {
				t.Errorf("layer %s of %d bytes (one piece) has a chunk table", l.MediaType, l.Size)
			}
			continue
		}
		if !ok {
			t.Errorf("layer %s of %d bytes has no chunk table", l.MediaType, l.Size)
			continue
		}
		raw := e.cl.blob(ctx, td.Digest)
		tb, err := integrity.Parse(raw)
		if err != nil {
			t.Errorf("chunk table of %s: %v", l.MediaType, err)
			continue
		}
		if err := tb.Covers(l); err != nil || tb.PieceSize != ps || tb.Digest() != td.Digest || int64(len(raw)) != td.Size {
			t.Errorf("chunk table of %s: %v; pieces of %d, want %d", l.MediaType, err, tb.PieceSize, ps)
		}
		data, err := os.ReadFile(pathFor(files, image.RoleOf(l.MediaType)))
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Check(0, data); err != nil {
			t.Errorf("chunk table of %s: the file fails it: %v", l.MediaType, err)
		}
	}
	for of := range covered {
		t.Errorf("a chunk table covers %s, which is no layer of the manifest", of)
	}
	return layers
}

// TestPushChunkTablesKeepTheImage: in both formats, a push with chunk
// tables has the same manifest as one without but for the tables appended
// to the layers: the layers, their order, types, titles and bytes, the
// config and the annotations are unchanged, and the mount shows the same
// files.
func TestPushChunkTablesKeepTheImage(t *testing.T) {
	for _, format := range []Format{FormatOpenKCM, FormatIronCore} {
		t.Run(string(format), func(t *testing.T) {
			ctx := fixture.Context(t, testTimeout)
			e := newEnv(t, "os/tables-"+string(format))
			files := sampleFiles(t)
			push := func(tag string, noTables bool) (*Result, ocispec.Manifest, *image.Tree) {
				t.Helper()
				o := e.options(tag, "amd64", files)
				o.Format = format
				o.CommandLine = testCmdline
				o.Variant = "metal"
				o.Title = "same title"
				o.NoChunkTables = noTables
				res, err := Push(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				m, _ := e.cl.manifest(ctx, res.Manifest)
				store, err := blobstore.Open(ctx, e.reg.Host()+"/"+e.cl.repo+":"+tag, blobstore.Options{PlainHTTP: true})
				if err != nil {
					t.Fatal(err)
				}
				tree, err := store.Resolve(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				return res, m, tree
			}
			plainRes, plain, plainTree := push("plain", true)
			res, withTables, tree := push("tables", false)

			if len(plainRes.Tables) != 0 || slices.ContainsFunc(plain.Layers, func(l ocispec.Descriptor) bool { return image.IsChunkTable(l.MediaType) }) {
				t.Errorf("NoChunkTables: tables %v, layers %+v", plainRes.Tables, plain.Layers)
			}
			layers := checkTables(t, e, withTables, files)
			if !reflect.DeepEqual(layers, plain.Layers) {
				t.Errorf("the layers changed:\n with tables %+v\n without     %+v", layers, plain.Layers)
			}
			if got := len(withTables.Layers) - len(layers); got != 5 || len(res.Tables) != 5 {
				t.Errorf("%d tables in the manifest, %d in the result; want 5", got, len(res.Tables))
			}
			for i, td := range withTables.Layers[len(layers):] {
				if td.Digest != res.Tables[i] {
					t.Errorf("table %d: manifest lists %s, Result %s", i, td.Digest, res.Tables[i])
				}
			}
			if !reflect.DeepEqual(withTables.Config, plain.Config) || !reflect.DeepEqual(withTables.Annotations, plain.Annotations) ||
				withTables.MediaType != plain.MediaType || withTables.ArtifactType != plain.ArtifactType {
				t.Errorf("the manifest's config, annotations or types changed")
			}

			strip := func(tr *image.Tree) []image.File {
				var out []image.File
				for _, f := range tr.Files {
					if f.Role != image.RoleManifest && f.Role != image.RoleIndex {
						out = append(out, f)
					}
				}
				return out
			}
			if got, want := strip(tree), strip(plainTree); !reflect.DeepEqual(got, want) {
				t.Errorf("the mount's files changed:\n with tables %+v\n without     %+v", got, want)
			}
			if len(tree.Files) != len(plainTree.Files) || len(tree.Warnings) != 0 {
				t.Errorf("%d files with tables, %d without; warnings %v", len(tree.Files), len(plainTree.Files), tree.Warnings)
			}
			if len(tree.Images) != 1 || len(tree.Images[0].Tables) != 5 || !reflect.DeepEqual(tree.Images[0].Layers, plain.Layers) {
				t.Errorf("Tree.Images = %+v", tree.Images)
			}
		})
	}
}
