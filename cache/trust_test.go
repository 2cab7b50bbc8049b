package cache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"golang.org/x/sys/unix"
)

// otherUID owns the directories of the "another user's" case: nobody.
const otherUID = 65534

// TestOpenDiskRefusesUnsafeDir plants in a cache directory what another
// user could have made of it. OpenDisk must refuse it with ErrUnsafeDir,
// naming the path and saying what is wrong, and must not touch the files
// outside that the plant points at.
func TestOpenDiskRefusesUnsafeDir(t *testing.T) {
	dataDir := filepath.Join("v2", strconv.Itoa(testChunk))
	tests := []struct {
		name string
		// plant prepares the cache root (already made, mode 0700) and
		// returns the directory to open and the path the error must name.
		plant     func(t *testing.T, root, outside string) (open, bad string)
		wantWhat  string // what is wrong, in the message
		needsRoot bool
	}{
		{"symlinked root", func(t *testing.T, root, outside string) (string, string) {
			link := filepath.Join(t.TempDir(), "cache")
			symlink(t, root, link)
			return link, link
		}, "symbolic link", false},
		{"symlinked tmp", func(t *testing.T, root, outside string) (string, string) {
			symlink(t, outside, filepath.Join(root, "tmp"))
			return root, filepath.Join(root, "tmp")
		}, "symbolic link", false},
		{"symlinked v2", func(t *testing.T, root, outside string) (string, string) {
			symlink(t, outside, filepath.Join(root, "v2"))
			return root, filepath.Join(root, "v2")
		}, "symbolic link", false},
		{"symlinked chunk size directory", func(t *testing.T, root, outside string) (string, string) {
			mkdir(t, filepath.Join(root, "v2"), 0o700)
			symlink(t, outside, filepath.Join(root, dataDir))
			return root, filepath.Join(root, dataDir)
		}, "symbolic link", false},
		{"symlinked blob directory", func(t *testing.T, root, outside string) (string, string) {
			mkdir(t, filepath.Join(root, dataDir, "sha256"), 0o700)
			bad := filepath.Join(root, dataDir, "sha256", strings.Repeat("ab", 32))
			symlink(t, outside, bad)
			return root, bad
		}, "symbolic link", false},
		{"symlinked chunk file", func(t *testing.T, root, outside string) (string, string) {
			blob := filepath.Join(root, dataDir, "sha256", strings.Repeat("ab", 32))
			mkdir(t, blob, 0o700)
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(blob, "data"))
			return root, filepath.Join(blob, "data")
		}, "symbolic link", false},
		{"symlinked eviction lock", func(t *testing.T, root, outside string) (string, string) {
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(root, "evict.lock"))
			return root, filepath.Join(root, "evict.lock")
		}, "symbolic link", false},
		{"symlinked usage counter", func(t *testing.T, root, outside string) (string, string) {
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(root, "usage"))
			return root, filepath.Join(root, "usage")
		}, "symbolic link", false},
		{"group-writable root", func(t *testing.T, root, outside string) (string, string) {
			chmod(t, root, 0o770)
			return root, root
		}, "chmod go-w", false},
		{"world-writable sticky root", func(t *testing.T, root, outside string) (string, string) {
			chmod(t, root, os.ModeSticky|0o777)
			return root, root
		}, "writable by group or others", false},
		{"group-writable tmp", func(t *testing.T, root, outside string) (string, string) {
			mkdir(t, filepath.Join(root, "tmp"), 0o775)
			return root, filepath.Join(root, "tmp")
		}, "writable by group or others", false},
		{"world-writable blob directory", func(t *testing.T, root, outside string) (string, string) {
			blob := filepath.Join(root, dataDir, "sha256", strings.Repeat("ab", 32))
			mkdir(t, blob, 0o777)
			return root, blob
		}, "writable by group or others", false},
		{"root owned by another user", func(t *testing.T, root, outside string) (string, string) {
			chown(t, root, otherUID)
			return root, root
		}, "belongs to uid 65534", true},
		{"tmp owned by another user", func(t *testing.T, root, outside string) (string, string) {
			mkdir(t, filepath.Join(root, "tmp"), 0o700)
			chown(t, filepath.Join(root, "tmp"), otherUID)
			return root, filepath.Join(root, "tmp")
		}, "belongs to uid 65534", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsRoot {
				fixture.RequireRoot(t, "chown a directory to another user")
			}
			root := filepath.Join(t.TempDir(), "cache")
			mkdir(t, root, 0o700)
			// outside is another user's directory, with a file the plant
			// points at: it must be there, unchanged, afterwards.
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			content := []byte("not the cache's to delete\n")
			if err := os.WriteFile(victim, content, 0o600); err != nil {
				t.Fatal(err)
			}
			open, bad := tc.plant(t, root, outside)
			d, err := OpenDisk(open, testChunk, 1<<20, nil)
			switch {
			case err == nil:
				d.Close()
				t.Errorf("OpenDisk(%s) succeeded, want ErrUnsafeDir", open)
			case !errors.Is(err, ErrUnsafeDir):
				t.Errorf("OpenDisk: %v, want ErrUnsafeDir", err)
			case !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), tc.wantWhat):
				t.Errorf("error %q does not name %s and say %q", err, bad, tc.wantWhat)
			default:
				t.Logf("OpenDisk: %v", err)
			}
			if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, content) {
				t.Errorf("the file outside the cache was changed: %q, %v", got, err)
			}
		})
	}
}

// TestOpenDiskMakesPrivateDirs: the directories OpenDisk creates, parents
// of the root included, have mode 0700 whatever the umask allows.
func TestOpenDiskMakesPrivateDirs(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "a", "b", "cache")
	openTestDisk(t, root, testChunk, 1<<20)
	for _, p := range []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), root,
		filepath.Join(root, "tmp"), filepath.Join(root, "v2"), filepath.Join(root, "v2", strconv.Itoa(testChunk))} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %s, want a directory of mode 0700", p, fi.Mode())
		}
	}
}

// TestOpenDiskKeepsTargetsOfLinksInTmp: emptying tmp/ at open removes a
// symbolic link planted there, never what it points at (a file, or a
// directory and its files).
func TestOpenDiskKeepsTargetsOfLinksInTmp(t *testing.T) {
	root := t.TempDir()
	mkdir(t, filepath.Join(root, "tmp"), 0o700)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	content := []byte("not the cache's to delete\n")
	if err := os.WriteFile(victim, content, 0o600); err != nil {
		t.Fatal(err)
	}
	symlink(t, victim, filepath.Join(root, "tmp", "chunk-file"))
	symlink(t, outside, filepath.Join(root, "tmp", "chunk-dir"))
	// Only what is older than staleTmp is garbage: a fresh entry may be
	// another process's work in progress.
	longAgo := []unix.Timespec{unix.NsecToTimespec(time.Now().Add(-2 * staleTmp).UnixNano()), unix.NsecToTimespec(time.Now().Add(-2 * staleTmp).UnixNano())}
	for _, l := range []string{"chunk-file", "chunk-dir"} {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, "tmp", l), longAgo, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "tmp", "blob-fresh"), 0o700); err != nil {
		t.Fatal(err)
	}
	openTestDisk(t, root, testChunk, 1<<20)
	if got, err := os.ReadFile(victim); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the file a link in tmp/ points at was changed: %q, %v", got, err)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "tmp")); err != nil || len(ents) != 1 || ents[0].Name() != "blob-fresh" {
		t.Errorf("tmp/ after open: %v, %v; want only blob-fresh", ents, err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// mkdir makes p and its parents, then sets p's mode exactly (the umask
// would clear group and other bits).
func mkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	chmod(t, p, mode)
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Chown(p, uid, -1); err != nil {
		t.Fatal(err)
	}
}
