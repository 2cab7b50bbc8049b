package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/profile"
	"github.com/osimagefs/osimagefs/publish"
	"github.com/osimagefs/osimagefs/source"
)

func newProfileCmd(g *globalFlags) *cobra.Command {
	c := &cobra.Command{
		Use:   "profile",
		Short: "Share boot profiles: what a boot reads, replayed ahead by later mounts",
		Long: `A boot profile lists the byte ranges of an image's layers that a boot read,
in the order it first read them. Record one with mount --record FILE, publish
it with profile push, and every later mount of the image (--prefetch auto,
the default) fetches those ranges right after mounting, many requests in
flight, before the boot asks for them.

The file is JSON (` + profile.MediaType + `):
an array of {"digest": "sha256:...", "off": N, "len": N, "at_ms": N}.`,
		Example: `  osimagefs mount --record boot.json REF /mnt/os &   # boot a VM from /mnt/os, then:
  umount /mnt/os                                      # boot.json is written now
  osimagefs profile push REF boot.json                # later mounts of REF replay it`,
	}
	c.AddCommand(newProfilePushCmd(g))
	return c
}

func newProfilePushCmd(g *globalFlags) *cobra.Command {
	var rf remoteFlags
	c := &cobra.Command{
		Use:   "push [flags] REFERENCE FILE",
		Short: "Check a boot profile against an image and attach it as a referrer",
		Long: `push reads the boot profile FILE (as mount --record writes it), checks it
against the image REFERENCE (a tag or a digest) and publishes it as an OCI
referrer of each image manifest that holds every layer it names: an image
manifest of artifactType ` + profile.ArtifactType + `,
the empty config, one ` + profile.MediaType + ` layer
and the image manifest as its subject. On a registry without the referrers
API of OCI distribution 1.1 the referrer is also listed in the index at the
tag sha256-<manifest hex>. The image itself is not changed; push access to
the repository is needed.

Refused, with the entry at fault named and exit status 2, before anything
is published: a file that is not a profile (malformed JSON, unknown fields,
len 0, more than ` + fmt.Sprint(profile.MaxEntries) + ` entries or ` + fmt.Sprint(profile.MaxSize>>20) + ` MiB),
an entry naming a blob that is no layer of the image, or bytes past the end
of its layer.

Of several profiles attached to one manifest, mounts use the newest. One
line per referrer goes to stdout: the image's directory, its manifest and
the referrer.`,
		Example: `  osimagefs profile push registry.example.com/os/debian:13 boot.json
  osimagefs profile push --plain-http --platform linux/amd64 localhost:5000/os/demo:1.0 boot.json`,
		Args: exactArgs(2, "REFERENCE and FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := source.Writable(args[0]); err != nil {
				return err
			}
			return runProfilePush(cmd, g, &rf, args[0], args[1])
		},
	}
	rf.registerForWrites(c.Flags())
	return c
}

func runProfilePush(cmd *cobra.Command, g *globalFlags, rf *remoteFlags, ref, file string) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	platforms, err := rf.parsePlatforms()
	if err != nil {
		return err
	}
	entries, err := readProfile(file)
	if err != nil {
		return err
	}
	pushed, err := publish.PushProfile(cmd.Context(), publish.ProfileOptions{
		Reference:  ref,
		Platforms:  platforms,
		Connection: rf.connection(),
		Logger:     log,
	}, entries)
	if err != nil {
		// Those published before the failure are said too.
		if perr := printPushedProfiles(cmd.OutOrStdout(), pushed, len(entries)); perr != nil {
			log.Debug("print the published profiles", "err", perr)
		}
		if errors.Is(err, profile.ErrNotInImage) || publish.IsUsage(err) {
			return usageError{fmt.Errorf("%s: %w", file, err)}
		}
		return err
	}
	return printPushedProfiles(cmd.OutOrStdout(), pushed, len(entries))
}

// readProfile reads and parses a profile file; what is wrong with it is a
// usage error naming the file.
func readProfile(file string) ([]profile.Entry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("read the boot profile: %w", err)}
	}
	defer f.Close()
	entries, err := profile.Parse(f)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", file, err)}
	}
	return entries, nil
}

// printPushedProfiles prints one line per referrer.
func printPushedProfiles(w io.Writer, pushed []publish.ProfilePushed, entries int) error {
	var errs []error
	for _, p := range pushed {
		_, err := fmt.Fprintf(w, "%s %s referrer %s: boot profile of %d entries\n", printable(p.Dir), p.Manifest, p.Referrer, entries)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
