package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// binary is the osimagefs binary under test, built by TestMain with the
// race detector; plainBinary is the same without it, for tests whose point
// is volume (the soak) rather than races.
var binary, plainBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "osimagefs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "osimagefs")
	plainBinary = filepath.Join(dir, "osimagefs-plain")
	for _, b := range []struct {
		out   string
		flags []string
	}{{binary, []string{"-race"}}, {plainBinary, nil}} {
		args := append(append([]string{"build"}, b.flags...), "-o", b.out, "github.com/osimagefs/osimagefs/cmd/osimagefs")
		build := exec.Command("go", args...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build osimagefs:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	if srcVal != nil {
		os.RemoveAll(srcVal.dir) // the sources built by buildSources
	}
	os.Exit(code)
}

// requireMountable fails (in CI) or skips the test when FUSE mounts cannot
// be made here.
func requireMountable(t *testing.T) {
	t.Helper()
	fixture.RequireFUSE(t)
}
