package main

import (
	"os"
	"os/exec"
	"testing"
)

// runMainEnv makes the test binary run the command instead of the tests:
// tests start it as a real osimagefs process (one that gets real signals
// and exits with real statuses).
const runMainEnv = "OSIMAGEFS_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command returns the test binary set up to run as osimagefs with args.
func command(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), runMainEnv+"=1")
	return c
}
