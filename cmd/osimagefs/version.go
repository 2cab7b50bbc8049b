package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionText says which osimagefs this is: the module version (a tagged
// release, else "devel"), the commit it was built from, with "modified"
// if the work tree had changes, and the Go that built it.
func versionText(info *debug.BuildInfo, ok bool) string {
	version, commit, modified := "devel", "unknown", false
	goVersion := runtime.Version()
	if ok {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
	}
	if modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("osimagefs %s\ncommit %s\n%s %s/%s", version, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}

// buildVersion is versionText of this binary.
func buildVersion() string { return versionText(debug.ReadBuildInfo()) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the Go version osimagefs was built with",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildVersion())
			return err
		},
	}
}
