package fs

import (
	"fmt"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo: a mount in this process's
// mount namespace.
type MountInfo struct {
	Device       string // major:minor
	Dir          string // mount point, unescaped
	Options      string // per-mount options: ro,nosuid,...
	FSType       string // e.g. fuse.osimagefs
	Source       string
	SuperOptions string // per-superblock options: default_permissions,...
}

// MountsAt returns the mounts at exactly dir, bottom first (the last one
// is the one visible). It reads /proc/self/mountinfo and never touches dir.
func MountsAt(dir string) ([]MountInfo, error) {
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	var out []MountInfo
	for _, m := range all {
		if m.Dir == dir {
			out = append(out, m)
		}
	}
	return out, nil
}

// parseMountInfo parses
// "id parent major:minor root mountpoint options [optional...] - fstype source superopts".
func parseMountInfo(line string) (MountInfo, bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 {
		return MountInfo{}, false
	}
	m := MountInfo{Device: fields[2], Dir: UnescapeMountInfo(fields[4]), Options: fields[5]}
	for i, f := range fields[6:] {
		if f == "-" {
			rest := fields[6+i+1:]
			if len(rest) > 0 {
				m.FSType = rest[0]
			}
			if len(rest) > 1 {
				m.Source = UnescapeMountInfo(rest[1])
			}
			if len(rest) > 2 {
				m.SuperOptions = rest[2]
			}
			break
		}
	}
	return m, true
}

// UnescapeMountInfo undoes the octal escapes (\040 for space) of mountinfo.
func UnescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
