package fs

import (
	"fmt"
	"os"
	"strconv"
)

// setKernelReadAhead sets the kernel's read-ahead for the mount at dir
// (/sys/class/bdi/<major:minor>/read_ahead_kb), so that sequential readers
// send large FUSE reads. The device number comes from /proc/self/mountinfo:
// the daemon never touches its own mount.
func setKernelReadAhead(dir string, bytes int64) error {
	dev, err := mountDevice(dir)
	if err != nil {
		return err
	}
	p := "/sys/class/bdi/" + dev + "/read_ahead_kb"
	if err := os.WriteFile(p, []byte(strconv.FormatInt(bytes>>10, 10)), 0o644); err != nil {
		return fmt.Errorf("set read-ahead of %s: %w", dir, err)
	}
	return nil
}

// mountDevice returns "major:minor" of the mount at dir (the visible one).
func mountDevice(dir string) (string, error) {
	ms, err := MountsAt(dir)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("find the mount at %s in /proc/self/mountinfo", dir)
	}
	return ms[len(ms)-1].Device, nil
}
