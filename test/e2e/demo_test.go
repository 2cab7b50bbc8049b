package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestDemo runs the README's `make demo` script (without waiting for
// Ctrl-C) and checks that it shows the tree and the lazily read files, and
// cleans up after itself.
func TestDemo(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "mkfs.ext4", "mksquashfs", "xorriso", "mountpoint")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts/demo.sh"))
	cmd.Env = append(os.Environ(), "DEMO_EXIT=1", "OSIMAGEFS_BIN="+plainBinary)
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo did not finish in 3 minutes:\n%s", out)
	}
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"amd64/virtualization/disk.img", // inspect's table
		"root.squashfs",
		"console=ttyS0 root=/dev/vda ro",         // the cmdline file
		"hello from inside disk.img",             // a file read from the loop-mounted disk.img
		"boot me",                                // read through image.iso.contents
		"-rw-r--r--   1     0     0   50331648 ", // osimagefs ls of the squashfs: payload.bin
		"demo: cleaned up",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "/tmp/osimagefs-demo.") {
		for _, line := range strings.Split(string(out), "\n") {
			if i := strings.Index(line, "/tmp/osimagefs-demo."); i >= 0 {
				dir := strings.Fields(line[i:])[0]
				dir = dir[:len("/tmp/osimagefs-demo.XXXXXX")]
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("demo left %s behind", dir)
				}
				break
			}
		}
	}
}
