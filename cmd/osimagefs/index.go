package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/publish"
	"github.com/osimagefs/osimagefs/source"
)

func newIndexCmd(g *globalFlags) *cobra.Command {
	var rf remoteFlags
	var force, quiet bool
	c := &cobra.Command{
		Use:   "index [flags] REFERENCE",
		Short: "Build chunk tables for an image pushed by any tool and attach them as referrers",
		Long: `index makes an image that osimagefs push did not write verifiable piece by
piece: it resolves REFERENCE (a tag or a digest), streams each layer larger
than one piece once from the registry, builds its chunk table, and attaches
the tables to each image manifest as an OCI referrer: an OCI image manifest
of artifactType ` + image.ArtifactTypeChunkTables + `, the empty config, one
` + image.MediaTypeChunkTable + ` layer per table and the image manifest as its
subject. On a registry without the referrers API of OCI distribution 1.1 the
referrer is listed in the index at the tag sha256-<manifest hex>, as that
spec's fallback says. The image itself is not changed.

A table is published only if the layer's bytes hash to its digest; a layer
that does not fails the command, and then nothing is published. The referrer
holds no time stamp: the same layers give the same referrer.

A manifest that lists tables itself, or that already has a chunk-table
referrer, is skipped (--force builds its referrer again). Layers of one piece
(64 KiB) or less need no table: their digest checks them.

Push access to the repository is needed. Progress bars go to stderr when it
is a terminal (not with --quiet); one line per manifest goes to stdout:
its directory, its digest, and the referrer published (with the tables and
bytes streamed) or why it was skipped.`,
		Example: `  # an image pushed by another tool (oras, crane, ...)
  osimagefs index registry.example.com/os/ironcore:1.0

  # only the amd64 manifests, of a local plain-HTTP registry
  osimagefs index --plain-http --platform linux/amd64 localhost:5000/os/gardenlinux:1.0

  # build the referrers again
  osimagefs index --force registry.example.com/os/ironcore@sha256:...`,
		Args: exactArgs(1, "REFERENCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := source.Writable(args[0]); err != nil {
				return err
			}
			return runIndex(cmd, g, &rf, args[0], force, quiet)
		},
	}
	rf.registerForWrites(c.Flags())
	c.Flags().BoolVar(&force, "force", false, "build and publish tables for manifests that already have a chunk-table referrer")
	c.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bars on stderr")
	return c
}

func runIndex(cmd *cobra.Command, g *globalFlags, rf *remoteFlags, ref string, force, quiet bool) error {
	logOut := &switchWriter{w: os.Stderr}
	log, err := g.loggerTo(logOut)
	if err != nil {
		return err
	}
	platforms, err := rf.parsePlatforms()
	if err != nil {
		return err
	}
	opts := publish.AttachOptions{
		Reference:  ref,
		Platforms:  platforms,
		Force:      force,
		Connection: rf.connection(),
		Logger:     log,
	}
	if stderr := cmd.ErrOrStderr(); !quiet && isTerminal(stderr) {
		bars := newIndexBars(stderr)
		logOut.set(bars.p)
		defer logOut.set(os.Stderr)
		defer bars.close()
		opts.Progress = bars
	}
	res, err := publish.AttachTables(cmd.Context(), opts)
	if err != nil {
		if publish.IsUsage(err) {
			return usageError{err}
		}
		return err
	}
	return printAttached(cmd.OutOrStdout(), res)
}

// printAttached prints one line per manifest.
func printAttached(w io.Writer, res []publish.Attached) error {
	var errs []error
	for _, a := range res {
		var err error
		if a.Referrer == "" {
			_, err = fmt.Fprintf(w, "%s %s skipped: %s\n", printable(a.Dir), a.Manifest, a.Skipped)
		} else {
			plural := "s"
			if a.Tables == 1 {
				plural = ""
			}
			_, err = fmt.Fprintf(w, "%s %s referrer %s: %d chunk table%s, %s streamed\n", printable(a.Dir), a.Manifest, a.Referrer, a.Tables, plural, bytesSize(a.Streamed))
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
