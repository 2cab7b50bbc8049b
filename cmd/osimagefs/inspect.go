package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/source"
)

func newInspectCmd(g *globalFlags) *cobra.Command {
	var rf remoteFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect [flags] REFERENCE",
		Short: "Print the tree that mount would show, without mounting",
		Long: `inspect resolves REFERENCE (a tag or a digest) and prints every file the
mount would show: path, role, size, media type and digest. Only the index,
manifests and configs are fetched.

Chunk tables a manifest lists (written by push) are not files of the mount;
they are listed after the files, each as the chunk table for the file whose
pieces mount checks with it.

` + referenceHelp,
		Example: `  osimagefs inspect localhost:5000/os/gardenlinux:1.0
  osimagefs inspect --platform linux/arm64 ghcr.io/example/os@sha256:...
  osimagefs inspect --json registry.example.com/os/debian:13 | jq '.files[].path'
  osimagefs inspect oci:./debian-layout:13`,
		Args: exactArgs(1, "REFERENCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := g.logger()
			if err != nil {
				return err
			}
			platforms, err := rf.parsePlatforms()
			if err != nil {
				return err
			}
			ref, err := source.Parse(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			opts, err := rf.storeOptions(log)
			if err != nil {
				return err
			}
			src, err := openSource(ctx, ref, opts, log)
			if err != nil {
				return err
			}
			defer src.Close()
			tree, err := src.Resolve(ctx, platforms)
			if err != nil {
				return err
			}
			for _, w := range tree.Warnings {
				log.Warn(w)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), args[0], tree)
			}
			return printTable(cmd.OutOrStdout(), args[0], tree)
		},
	}
	rf.register(c.Flags())
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return c
}

type inspectFile struct {
	Path      string `json:"path"`
	Role      string `json:"role"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest,omitempty"`
	Platform  string `json:"platform,omitempty"`
}

// inspectTable is a chunk table a manifest lists, and the file it covers.
type inspectTable struct {
	For    string `json:"for"`   // the file's path, or the layer's digest when no file has it
	Layer  string `json:"layer"` // the covered layer's digest
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

type inspectOut struct {
	Reference   string         `json:"reference"`
	Digest      string         `json:"digest"`
	MediaType   string         `json:"mediaType"`
	Files       []inspectFile  `json:"files"`
	ChunkTables []inspectTable `json:"chunkTables,omitempty"`
	Warnings    []string       `json:"warnings,omitempty"`
}

// chunkTables lists the tables of t's manifests, in tree order.
func chunkTables(t *image.Tree) []inspectTable {
	var out []inspectTable
	for _, img := range t.Images {
		for _, td := range img.Tables {
			of := td.Annotations[image.AnnotationChunkTableOf]
			it := inspectTable{For: of, Layer: of, Size: td.Size, Digest: td.Digest.String()}
			for _, f := range t.Files {
				if of != "" && f.Digest.String() == of && strings.HasPrefix(f.Path, img.Dir+"/") {
					it.For = f.Path
					break
				}
			}
			if it.For == "" {
				it.For = "(no layer named)"
			}
			out = append(out, it)
		}
	}
	return out
}

func printJSON(w io.Writer, ref string, t *image.Tree) error {
	out := inspectOut{Reference: ref, Digest: t.Digest.String(), MediaType: t.MediaType, Warnings: t.Warnings, ChunkTables: chunkTables(t)}
	for _, f := range t.Files {
		out.Files = append(out.Files, inspectFile{Path: f.Path, Role: string(f.Role), Size: f.Size, MediaType: f.MediaType, Digest: f.Digest.String(), Platform: f.Platform})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printTable(w io.Writer, ref string, t *image.Tree) error {
	fmt.Fprintf(w, "%s\n  resolved to %s (%s)\n\n", printable(ref), t.Digest, printable(t.MediaType))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tROLE\tSIZE\tMEDIA TYPE\tDIGEST")
	for _, f := range t.Files {
		d := f.Digest.String()
		if d == "" {
			d = "(from config)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(f.Path), f.Role, units.BytesSize(float64(f.Size)), printable(f.MediaType), d)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tables := chunkTables(t)
	if len(tables) == 0 {
		return nil
	}
	// Not files of the mount: what it checks the pieces of these files with.
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHUNK TABLE FOR\tSIZE\tDIGEST")
	for _, c := range tables {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", printable(c.For), units.BytesSize(float64(c.Size)), printable(c.Digest))
	}
	return tw.Flush()
}

// exactArgs is cobra.ExactArgs with a message naming the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s, got %d argument(s) (see --help)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}
