package fs

import (
	"bufio"
	"fmt"
	"os"
)

// FSType is the file system type of every osimagefs mount in mountinfo.
const FSType = "fuse.osimagefs"

// Mounts returns every mount in this process's mount namespace, in the
// order of /proc/self/mountinfo (a mount over another comes after it).
func Mounts() ([]MountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []MountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountInfo(sc.Text()); ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	return out, nil
}
