package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// globalFlags are shared by every command.
type globalFlags struct {
	logLevel string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "osimagefs",
		Short: "Mount an OS image from an OCI registry or image layout as a lazy, read-only file tree",
		Long: `osimagefs shows an operating-system image stored in an OCI registry
(disk image, kernel, initramfs, squashfs, cmdline, UKI, ISO) as plain files,
and fetches the bytes of a file only when something reads them. An image
in an OCI image layout directory is read in place: oci:DIR[:TAG|@DIGEST].

A hypervisor can boot straight from the mounted kernel and disk.img, an
engineer can ls, cat and loop-mount, and nobody waits for gigabytes first.

Credentials come from the Docker config (~/.docker/config.json,
$DOCKER_CONFIG, credential helpers); without them access is anonymous.

Exit status: 0 success, 1 other failure, 2 bad usage or input (also a
directory that is not an OCI layout, or oci:DIR for a layout of several
images, none tagged latest), 3 reference not found (also a layout
directory, tag or blob), 4 access denied, 5 registry unreachable
(also when plain HTTP was refused for want of --plain-http: a plain-HTTP
registry, or a redirect from HTTPS to HTTP), 6 not an OS image,
7 mount point unusable, 8 FUSE unavailable (/dev/fuse
missing or not accessible, or fusermount3 not installed when not root),
130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM (a mount that is up
unmounts cleanly instead and exits 0).`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log verbosity: debug, info, warn or error (logs go to stderr; see mount --log-file)")
	root.AddCommand(newMountCmd(g), newInspectCmd(g), newPushCmd(g), newIndexCmd(g), newProfileCmd(g), newFetchCmd(g), newLsCmd(g), newCatCmd(g), newCpCmd(g), newStatusCmd(), newVersionCmd())
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		// Every command takes a REFERENCE first.
		if len(args) > 0 && hasUserInfo(args[0]) {
			return usageError{errors.New("REFERENCE must not contain credentials (user:password@): " +
				"log in with docker login, or put them in a Docker config ($DOCKER_CONFIG/config.json)")}
		}
		return nil
	}
	var wrap func(*cobra.Command)
	wrap = func(parent *cobra.Command) {
		for _, c := range parent.Commands() {
			if run := c.RunE; run != nil {
				c.RunE = func(cmd *cobra.Command, args []string) error { return redactError(explain(run(cmd, args))) }
			}
			wrap(c) // subcommands: profile push
		}
	}
	wrap(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	return root
}

// logger builds the stderr handler for the chosen level.
func (g *globalFlags) logger() (*slog.Logger, error) { return g.loggerTo(os.Stderr) }

// loggerTo is logger writing to w.
func (g *globalFlags) loggerTo(w io.Writer) (*slog.Logger, error) {
	lvl, err := g.level()
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: redactAttr})), nil
}

// level is the chosen log level.
func (g *globalFlags) level() (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(g.logLevel))); err != nil {
		return lvl, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	return lvl, nil
}
