package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/pflag"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/source"
)

// verifyHelp is the help of --verify, for mount and fetch.
const verifyHelp = `how bytes are checked before a reader gets them: auto (pieces where the image has chunk tables, in its manifests or as referrers (osimagefs index), else the whole blob once complete on disk), pieces (every piece, and refuse to mount a layer without a table), blob (the whole blob once complete on disk only) or off`

// registerVerify adds --verify to fl.
func registerVerify(fl *pflag.FlagSet, mode *string) {
	fl.StringVar(mode, "verify", string(integrity.Auto), verifyHelp)
}

// parseVerify checks a --verify value.
func parseVerify(s string) (integrity.Mode, error) {
	m, err := integrity.ParseMode(s)
	if err != nil {
		return "", usageError{fmt.Errorf("--verify %w", err)}
	}
	return m, nil
}

// newVerifier decides how each layer of tree is checked, looking up chunk
// tables in src first unless mode needs none, and logs the decision for
// each layer. A table that disagrees with its layer fails it.
func newVerifier(ctx context.Context, mode integrity.Mode, chunkSize int64, src source.Source, tree *image.Tree, log *slog.Logger) (*integrity.Verifier, error) {
	var layers []ocispec.Descriptor
	for _, img := range tree.Images {
		layers = append(layers, img.Layers...)
	}
	var found []integrity.Found
	if mode == integrity.Auto || mode == integrity.Pieces {
		start := time.Now()
		var warnings []string
		var err error
		found, warnings, err = integrity.Find(ctx, src, tree.Images)
		if err != nil {
			return nil, err
		}
		for _, w := range warnings {
			log.Warn(w)
		}
		log.Info("chunk tables looked up", "found", integrity.Describe(found), "took", time.Since(start).Round(time.Millisecond))
	}
	v, decisions, err := integrity.NewVerifier(mode, chunkSize, layers, found)
	if err != nil {
		return nil, usageError{err}
	}
	paths := filesOf(tree)
	for _, d := range decisions {
		args := []any{"files", strings.Join(paths[d.Blob], " "), "digest", d.Blob, "mode", string(d.Mode)}
		switch d.Mode {
		case integrity.Pieces:
			args = append(args, "piece-size", d.PieceSize, "by", d.From)
		case integrity.Whole:
			if d.Why != "" {
				args = append(args, "why", d.Why)
			}
			// What lazy.Options.CheckFirst does for a local source.
			when := "once complete in the disk cache"
			if src.Info().Local {
				when = "before any of it is served"
			}
			args = append(args, "checked", when)
		}
		if d.Mode == integrity.Off {
			log.Warn("verification off", args...)
			continue
		}
		log.Info("verification", args...)
	}
	return v, nil
}

// filesOf maps each layer's digest to its paths in the tree.
func filesOf(tree *image.Tree) map[digest.Digest][]string {
	out := map[digest.Digest][]string{}
	for _, f := range tree.Files {
		if f.Lazy() {
			out[f.Digest] = append(out[f.Digest], f.Path)
		}
	}
	return out
}
