package layout

import (
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Ref names an image in a layout: DIR (the only image of its index.json,
// or the one tagged latest), DIR:TAG or DIR@DIGEST.
type Ref struct {
	Dir    string
	Tag    string        // an org.opencontainers.image.ref.name, or ""
	Digest digest.Digest // a manifest or index, or ""
}

// String is the reference as ParseRef reads it.
func (r Ref) String() string {
	switch {
	case r.Digest != "":
		return r.Dir + "@" + r.Digest.String()
	case r.Tag != "":
		return r.Dir + ":" + r.Tag
	}
	return r.Dir
}

// ParseRef reads DIR, DIR:TAG or DIR@DIGEST. Both DIR and TAG may contain
// ':' (a ref.name such as docker.io/library/debian:13 is a TAG), so the
// split is decided by the file system: DIR is the longest part of s, ending
// where s ends or just before a ':' or '@', that names an existing
// directory. What follows it is the TAG (after ':') or the DIGEST (after
// '@'). When no such part is a directory the error names the directory
// that a split at the last ':' (as skopeo makes it) would give.
func ParseRef(s string) (Ref, error) {
	if s == "" {
		return Ref{}, errorf(ErrBadReference, "no layout directory: write oci:DIR, oci:DIR:TAG or oci:DIR@sha256:...")
	}
	for end := len(s); end > 0; end = strings.LastIndexAny(s[:end], ":@") {
		dir, rest := s[:end], s[end:]
		if dir == "" || !isDir(dir) {
			continue
		}
		r := Ref{Dir: dir}
		switch {
		case rest == "":
		case rest[0] == '@':
			d, err := digest.Parse(rest[1:])
			if err != nil {
				return Ref{}, errorf(ErrBadReference, "%q after the layout directory %s is not a digest: %w", rest[1:], dir, err)
			}
			r.Digest = d
		default:
			if r.Tag = rest[1:]; r.Tag == "" {
				return Ref{}, errorf(ErrBadReference, "an empty tag after the layout directory %s (the ':' at the end)", dir)
			}
		}
		return r, nil
	}
	dir := s
	if i := strings.LastIndexAny(s, ":@"); i > 0 {
		dir = s[:i]
	}
	if _, err := os.Stat(dir); err == nil {
		return Ref{}, errorf(ErrInvalid, "layout directory %s: not a directory", dir)
	}
	return Ref{}, errorf(ErrNotFound, "no layout directory %s", dir)
}

// isDir reports whether p names a directory (after symbolic links).
func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
