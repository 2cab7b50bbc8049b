package nodetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/contents/node"
)

// Find returns the Ino of path in f: names separated by '/', empty names
// and "." skipped, so that "" and "." are the root.
func Find(ctx context.Context, f node.FS, path string) (node.Ino, error) {
	ino := f.Root()
	for name := range strings.SplitSeq(path, "/") {
		if name == "" || name == "." {
			continue
		}
		ents, err := f.ReadDir(ctx, ino)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		i := slices.IndexFunc(ents, func(e node.DirEntry) bool { return e.Name == name })
		if i < 0 {
			names := make([]string, len(ents))
			for i, e := range ents {
				names[i] = e.Name
			}
			return 0, fmt.Errorf("%s: no %q in %q", path, name, names)
		}
		ino = ents[i].Ino
	}
	return ino, nil
}

// Lookup is Find that fails the test on an error.
func Lookup(t testing.TB, f node.FS, path string) node.Ino {
	t.Helper()
	ino, err := Find(t.Context(), f, path)
	if err != nil {
		t.Fatalf("lookup %q: %v", path, err)
	}
	return ino
}

// MatchDir lists the source directory dir and the directory ino of f, and
// fails the test unless they hold the same names. It returns the source's
// entries, sorted by name, and the Ino of each name in f.
func MatchDir(t testing.TB, f node.FS, ino node.Ino, dir string) ([]os.DirEntry, map[string]node.Ino) {
	t.Helper()
	src, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := f.ReadDir(t.Context(), ino)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var want, got []string
	for _, e := range src {
		want = append(want, e.Name())
	}
	byName := map[string]node.Ino{}
	for _, e := range ents {
		got = append(got, e.Name)
		byName[e.Name] = e.Ino
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: names %q, want %q", dir, got, want)
	}
	return src, byName
}

// CheckFile compares the regular file ino of f with the source file at p:
// one read of all of it ends in io.EOF with the same bytes, and ReadDir and
// Readlink on it fail with node.ErrNotDir and node.ErrNotLink. It returns
// the source's bytes, for the format's own checks.
func CheckFile(t testing.TB, f node.FS, ino node.Ino, p string) []byte {
	t.Helper()
	ctx := t.Context()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)+100)
	n, err := f.ReadAt(ctx, ino, got, 0)
	if n != len(data) || err != io.EOF || sha256.Sum256(got[:n]) != sha256.Sum256(data) {
		t.Errorf("%s: read %d bytes, %v; content differs: %v", p, n, err, !bytes.Equal(got[:n], data))
	}
	if _, err := f.ReadDir(ctx, ino); !errors.Is(err, node.ErrNotDir) {
		t.Errorf("%s: ReadDir on a file: %v", p, err)
	}
	if _, err := f.Readlink(ctx, ino); !errors.Is(err, node.ErrNotLink) {
		t.Errorf("%s: Readlink on a file: %v", p, err)
	}
	return data
}

// Touch reads everything of f down to a depth of 8, ignoring every error,
// as a fuzzer's check that nothing panics or hangs: Attr, Readlink and a
// ReadAt of piece bytes at 0 on each object, ReadDir on each directory.
func Touch(f node.FS, piece int) {
	touch(f, f.Root(), 0, piece)
}

func touch(f node.FS, ino node.Ino, depth, piece int) {
	ctx := context.Background()
	_, _ = f.Attr(ctx, ino)
	ents, err := f.ReadDir(ctx, ino)
	if err != nil || depth > 8 {
		return
	}
	for _, e := range ents {
		_, _ = f.Attr(ctx, e.Ino)
		_, _ = f.Readlink(ctx, e.Ino)
		_, _ = f.ReadAt(ctx, e.Ino, make([]byte, piece), 0)
		touch(f, e.Ino, depth+1, piece)
	}
}
