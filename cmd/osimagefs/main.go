// Command osimagefs mounts an operating-system image stored in an OCI
// registry as a read-only directory tree, fetching layer bytes only when
// they are read.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	stop := startProfile()
	ctx, stopSignals := withInterrupt(context.Background())
	root := newRootCmd()
	args, helper, err := helperArgs(os.Args, isCommand(root))
	if helper && err == nil {
		root.SetArgs(args) // run as mount.fuse.osimagefs
	}
	if err == nil {
		err = interrupted(ctx, root.ExecuteContext(ctx))
	}
	stopSignals()
	stop()
	if err != nil {
		if !errors.As(err, new(reportedError)) {
			fmt.Fprintln(os.Stderr, "osimagefs:", oneLine(err))
		}
		os.Exit(exitCode(err))
	}
}

// isCommand reports whether name is a command of root (or help), as
// opposed to the SOURCE of a mount helper's command line.
func isCommand(root *cobra.Command) func(string) bool {
	return func(name string) bool {
		if name == "help" || name == "completion" || name == "__complete" {
			return true
		}
		for _, c := range root.Commands() {
			if c.Name() == name || c.HasAlias(name) {
				return true
			}
		}
		return false
	}
}
