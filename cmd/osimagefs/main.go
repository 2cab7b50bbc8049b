// Command osimagefs mounts an operating-system image stored in an OCI
// registry as a read-only directory tree, fetching layer bytes only when
// they are read.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	stop := startProfile()
	ctx, stopSignals := withInterrupt(context.Background())
	err := interrupted(ctx, newRootCmd().ExecuteContext(ctx))
	stopSignals()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "osimagefs:", oneLine(err))
		os.Exit(exitCode(err))
	}
}
