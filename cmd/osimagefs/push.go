package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/osimagefs/osimagefs/publish"
	"github.com/osimagefs/osimagefs/source"
)

// pushFlags are the flags of the push command.
type pushFlags struct {
	remote      remoteFlags // its --platform is not registered
	arch        string
	osName      string
	variant     string
	title       string
	files       publish.Files
	cmdline     string
	cmdlineFile string
	format      string
	addToIndex  bool
	chunkTables bool
	quiet       bool
}

func newPushCmd(g *globalFlags) *cobra.Command {
	f := &pushFlags{}
	c := &cobra.Command{
		Use:   "push [flags] REFERENCE --arch ARCH [--disk F] [--kernel F] [--initramfs F] [--squashfs F] [--uki F] [--iso F]",
		Short: "Build an OS image from files and push it to a registry",
		Long: `push builds the image of one platform from plain files and pushes it to
REFERENCE (a tag; ":latest" if none is given), in the format mount reads:

  - one OCI manifest (application/vnd.oci.image.manifest.v1+json, artifactType
    application/vnd.OpenKCM.image.artifacts.v1+json) with one raw,
    uncompressed layer per file, annotated with the file's name in the tree,
    and the annotations variant, architecture and org.opencontainers.image.title;
  - a config application/vnd.OpenKCM.image.config.v1+json holding
    {"commandLine": ...}, and with --cmdline also a cmdline layer;
  - an OCI index (application/vnd.oci.image.index.v1+json) at the tag whose
    entry for the manifest has platform {os, architecture}.

--format ironcore writes IronCore's current types instead
(application/vnd.ironcore.image.rootfs, ...kernel, ...initramfs, ...squashfs,
...uki, ...iso, config application/vnd.ironcore.image.config.v1+json), the
command line only in the config, and no mediaType field in the manifest.

Without --add-to-index the tag gets an index of this one platform, replacing
whatever it pointed to. With --add-to-index the index already at the tag is
fetched and the manifest added to it, replacing the entry of the same os,
architecture and variant: push once per architecture (or variant) to build a
multi-platform image. Two pushes to the same tag at the same time can lose
one of the entries: run them one after the other.

Every file is read once to compute its sha256, then streamed to the registry
unless the registry already has that blob, so pushing again uploads nothing.

The same read builds a chunk table for every file larger than one piece (64
KiB; larger pieces for files over 64 GiB): the sha256 of each piece, about
512 KiB per GiB. Each table is pushed as a blob and listed in the manifest
after the files (media type application/vnd.osimagefs.chunktable.v1, the
annotation io.osimagefs.chunktable.of naming the file's layer, no title), so
the manifest digest covers it and registry garbage collection keeps it.
mount checks every piece against it before a reader gets a byte; tools that
pick layers by media type or title (IronCore, oras pull) see the same image
as without tables. --chunk-tables=false leaves them out.
Progress bars go to stderr when it is a terminal (not with --quiet). The
pinned reference of the pushed index, REPOSITORY@sha256:..., is printed on
stdout.

Credentials come from the Docker config (~/.docker/config.json,
$DOCKER_CONFIG, credential helpers), as for docker push.`,
		Example: `  # a virtualization image for amd64
  osimagefs push localhost:5000/os/gardenlinux:1.0 --arch amd64 --variant virtualization \
      --disk disk.raw --kernel vmlinuz --initramfs initrd --cmdline "console=ttyS0 root=LABEL=ROOT"

  # add the arm64 build to the same tag: the index then lists both
  osimagefs push localhost:5000/os/gardenlinux:1.0 --add-to-index --arch arm64 --variant virtualization \
      --disk disk-arm64.raw --kernel vmlinuz-arm64 --initramfs initrd-arm64 --cmdline-file cmdline.txt

  # in a script: keep the digest, then mount exactly what was pushed
  ref=$(osimagefs push --quiet registry.example.com/os/debian:13 --arch amd64 --squashfs root.squashfs --uki uki.efi)
  osimagefs mount "$ref" /mnt/os

  # IronCore's media types
  osimagefs push --format ironcore localhost:5000/os/ironcore:1 --arch amd64 --variant metal --disk disk.raw`,
		Args: exactArgs(1, "REFERENCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := source.Writable(args[0]); err != nil {
				return err
			}
			return runPush(cmd, g, f, args[0])
		},
	}
	fl := c.Flags()
	// The connection flags of remoteFlags, without --platform: push names
	// its one platform with --os, --arch and --variant.
	remote := pflag.NewFlagSet("remote", pflag.ContinueOnError)
	f.remote.registerForWrites(remote)
	remote.VisitAll(func(fg *pflag.Flag) {
		if fg.Name != "platform" {
			fl.AddFlag(fg)
		}
	})
	fl.StringVar(&f.arch, "arch", "", "architecture of the image, as in OCI platforms: amd64, arm64, ... (required)")
	fl.StringVar(&f.osName, "os", "linux", "operating system of the index entry's platform")
	fl.StringVar(&f.variant, "variant", "default", "variant of the image (virtualization, metal, kvm, ...): the directory mount shows it in")
	fl.StringVar(&f.title, "title", "", `org.opencontainers.image.title of the manifest (default "<repository name> <variant> (<arch>)")`)
	fl.StringVar(&f.files.Disk, "disk", "", "raw disk image, shown as disk.img")
	fl.StringVar(&f.files.Kernel, "kernel", "", "kernel, shown as kernel")
	fl.StringVar(&f.files.Initramfs, "initramfs", "", "initramfs, shown as initramfs")
	fl.StringVar(&f.files.Squashfs, "squashfs", "", "squashfs root file system, shown as root.squashfs")
	fl.StringVar(&f.files.UKI, "uki", "", "unified kernel image, shown as uki.efi")
	fl.StringVar(&f.files.ISO, "iso", "", "ISO image, shown as image.iso")
	fl.StringVar(&f.cmdline, "cmdline", "", "kernel command line, shown as cmdline")
	fl.StringVar(&f.cmdlineFile, "cmdline-file", "", "file holding the kernel command line (surrounding white space removed)")
	fl.StringVar(&f.format, "format", string(publish.FormatOpenKCM), "media types to write: openkcm or ironcore")
	fl.BoolVar(&f.addToIndex, "add-to-index", false, "add to the index at REFERENCE, replacing the entry of the same os, arch and variant, instead of replacing the index")
	fl.BoolVar(&f.chunkTables, "chunk-tables", true, "push a chunk table (sha256 of every 64 KiB piece) for each file larger than one piece, so mount can check every piece before a reader gets it; false: only the whole-blob digest")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress bars and no summary on stderr")
	return c
}

func runPush(cmd *cobra.Command, g *globalFlags, f *pushFlags, ref string) error {
	log, err := g.logger()
	if err != nil {
		return err
	}
	format, err := publish.ParseFormat(f.format)
	if err != nil {
		return usageError{err}
	}
	if cmd.Flags().Changed("cmdline") && cmd.Flags().Changed("cmdline-file") {
		return usageError{errors.New("give --cmdline or --cmdline-file, not both")}
	}
	cmdline := f.cmdline
	if f.cmdlineFile != "" {
		b, err := os.ReadFile(f.cmdlineFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return usageError{fmt.Errorf("--cmdline-file %s: %w", f.cmdlineFile, err)}
		}
		cmdline = string(b)
	}

	opts := publish.Options{
		Reference:     ref,
		OS:            f.osName,
		Architecture:  f.arch,
		Variant:       f.variant,
		Title:         f.title,
		Files:         f.files,
		CommandLine:   cmdline,
		Format:        format,
		AddToIndex:    f.addToIndex,
		NoChunkTables: !f.chunkTables,
		Connection:    f.remote.connection(),
		Logger:        log,
	}
	stderr := cmd.ErrOrStderr()
	if !f.quiet && isTerminal(stderr) {
		bars := newPushBars(stderr)
		defer bars.close()
		opts.Progress = bars
	}

	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := publish.Push(ctx, opts)
	if err != nil {
		if publish.IsUsage(err) {
			return usageError{err}
		}
		return err
	}
	if !f.quiet {
		log.Info("pushed", "reference", ref, "platform", opts.OS+"/"+opts.Architecture, "variant", opts.Variant,
			"manifest", res.Manifest, "uploaded", len(res.Uploaded), "already_present", len(res.Skipped), "replaced", len(res.Replaced), "chunk_tables", len(res.Tables))
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Reference)
	return err
}
