package main

import (
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// fetchLayer is one blob to bring into the disk cache, with the paths it
// has in the tree (one blob may appear at several).
type fetchLayer struct {
	Digest digest.Digest
	Size   int64
	Paths  []string
}

// Label names the layer by its first path, and how many more it has.
func (l fetchLayer) Label() string {
	if len(l.Paths) > 1 {
		return fmt.Sprintf("%s (+%d more)", l.Paths[0], len(l.Paths)-1)
	}
	return l.Paths[0]
}

// selectLayers returns the layers of tree that paths select, in tree
// order, each blob once. A path is a file as the mount shows it
// (amd64/virtualization/disk.img) or a directory of them (amd64); none
// selects every layer. Documents (manifest.json, config.json, a cmdline
// from the config) are held in memory by a mount and have nothing to
// fetch. A path that is in the tree neither as a file nor as a directory
// is a usage error naming it and listing the layer files there are.
func selectLayers(tree *image.Tree, paths []string) ([]fetchLayer, error) {
	want := make([]string, len(paths))
	for i, p := range paths {
		want[i] = path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/"))
	}
	matches := func(file string) bool {
		if len(want) == 0 {
			return true
		}
		for _, w := range want {
			if under(file, w) {
				return true
			}
		}
		return false
	}
	for i, w := range want {
		found := false
		for _, f := range tree.Files {
			found = found || under(f.Path, w)
		}
		if !found {
			return nil, usageError{fmt.Errorf("PATH %q is not in the image; its layer files are: %s", paths[i], strings.Join(layerPaths(tree), ", "))}
		}
	}
	var out []fetchLayer
	at := map[digest.Digest]int{}
	for _, f := range tree.Files {
		if !f.Lazy() || !matches(f.Path) {
			continue
		}
		if i, ok := at[f.Digest]; ok {
			out[i].Paths = append(out[i].Paths, f.Path)
			continue
		}
		at[f.Digest] = len(out)
		out = append(out, fetchLayer{Digest: f.Digest, Size: f.Size, Paths: []string{f.Path}})
	}
	return out, nil
}

// under reports whether file is dir or in it ("." holds everything).
func under(file, dir string) bool {
	return file == dir || dir == "." || strings.HasPrefix(file, dir+"/")
}

// layerPaths lists the paths of the tree's layer files.
func layerPaths(tree *image.Tree) []string {
	var out []string
	for _, f := range tree.Files {
		if f.Lazy() {
			out = append(out, f.Path)
		}
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}
