package fs

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// mountDevice returns "major:minor" of the mount at dir.
func mountDevice(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	dev := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			dev = fields[2] // the last mount at dir wins: it is ours
		}
	}
	if dev == "" {
		return "", fmt.Errorf("find the mount at %s in /proc/self/mountinfo", dir)
	}
	return dev, nil
}
