package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

const chunkSize = lazy.DefaultChunkSize

// TestMountSeedIndex mounts the multi-arch seed-format image through a
// counting proxy and checks the tree, laziness, content and a clean exit.
func TestMountSeedIndex(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	img := pushSeedIndex(t, reg.Host(), s)
	counter := registrytest.NewCountingProxy(t, reg.Host())
	dir := t.TempDir()
	m := startMount(t, counter.Host()+"/"+img.ref, dir, "--plain-http")

	counter.Reset()
	t.Run("listing the tree fetches nothing", func(t *testing.T) {
		out, err := listTree(dir)
		if err != nil {
			t.Fatalf("list the tree: %v\n%s", err, out)
		}
		if n := counter.BlobBytes(); n != 0 {
			t.Fatalf("listing the tree fetched %d blob bytes, want 0", n)
		}
	})

	t.Run("paths and sizes", func(t *testing.T) {
		got := map[string]int64{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return skipContents(d, err)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm() != 0o444 {
				t.Errorf("%s: mode %v, want 0444", p, info.Mode())
			}
			rel, _ := filepath.Rel(dir, p)
			got[rel] = info.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for p, e := range img.expected {
			want[p] = expectedSize(t, e)
		}
		if !equalMaps(got, want) {
			t.Fatalf("tree:\n got %v\nwant %v", sortedKeys(got), sortedKeys(want))
		}
		if n := counter.BlobBytes(); n != 0 {
			t.Fatalf("walking and stat fetched %d blob bytes, want 0", n)
		}
	})

	t.Run("4 KiB in the middle of disk.img fetches at most 64 KiB", func(t *testing.T) {
		counter.Reset()
		f, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p := make([]byte, 4096)
		off := int64(diskSize/2 + 3*4096) // the middle of disk.img
		if _, err := f.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(img.expected["amd64/virtualization/disk.img"].path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, src[off:off+4096]) {
			t.Fatal("wrong bytes")
		}
		got := counter.BlobBytes()
		t.Logf("a 4 KiB read at offset %d fetched %d bytes in %d requests (chunk %d)", off, got, counter.BlobRequests(), chunkSize)
		if got > 64<<10 {
			t.Fatalf("fetched %d bytes, want at most 64 KiB", got)
		}
	})

	t.Run("every file matches its source", func(t *testing.T) {
		for p, e := range img.expected {
			gotSum := sumFile(t, filepath.Join(dir, p))
			if want := expectedSum(t, e); gotSum != want {
				t.Errorf("%s: sha256 %s, want %s", p, gotSum, want)
			}
		}
	})

	t.Run("writes are refused", func(t *testing.T) {
		_, err := os.OpenFile(filepath.Join(dir, "amd64/virtualization/kernel"), os.O_WRONLY, 0)
		if err == nil {
			t.Fatal("opened a file for writing")
		}
		if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644); err == nil {
			t.Fatal("created a file")
		}
	})

	t.Run("SIGTERM unmounts cleanly", func(t *testing.T) {
		if err := m.terminate(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, m.stderr.String())
		}
		if isMounted(dir) {
			t.Fatal("mount left behind after SIGTERM")
		}
	})
}

// TestMountIronCore mounts an IronCore-format image (no manifest mediaType,
// command line in the config) and checks every file.
func TestMountIronCore(t *testing.T) {
	requireMountable(t)
	s := buildSources(t)
	reg := registrytest.Start(t)
	img := pushIronCore(t, reg.Host(), s)
	dir := t.TempDir()
	m := startMount(t, reg.Host()+"/"+img.ref, dir, "--plain-http")
	var got []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			return skipContents(d, nil)
		}
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return nil
	})
	sort.Strings(got)
	if want := sortedKeys(img.expected); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("tree %v, want %v", got, want)
	}
	for p, e := range img.expected {
		if gotSum, want := sumFile(t, filepath.Join(dir, p)), expectedSum(t, e); gotSum != want {
			t.Errorf("%s: sha256 %s, want %s", p, gotSum, want)
		}
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "amd64/metal/cmdline"))
	if err != nil || string(cmdline) != s.cmdline {
		t.Fatalf("cmdline %q (%v), want %q", cmdline, err, s.cmdline)
	}
	// The mounted disk is a real ext4 file system: its files match.
	fixture.RequireTools(t, "mount")
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", filepath.Join(dir, "amd64/metal/disk.img"), mnt).CombinedOutput(); err != nil {
		t.Fatalf("loop-mount disk.img: %v\n%s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	sums, err := fixture.TreeSums(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range s.diskTree {
		if sums[p] != want {
			t.Errorf("disk.img:%s: sha256 %q, want %q", p, sums[p], want)
		}
	}
	if err := exec.Command("umount", mnt).Run(); err != nil {
		t.Fatalf("umount loop: %v", err)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}

func expectedSize(t *testing.T, e expectedFile) int64 {
	if e.path == "" {
		return int64(len(e.content))
	}
	st, err := os.Stat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func expectedSum(t *testing.T, e expectedFile) string {
	if e.path == "" {
		s := sha256.Sum256(e.content)
		return hex.EncodeToString(s[:])
	}
	s, err := fixture.Sha256File(e.path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sumFile(t *testing.T, p string) string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// skipContents returns fs.SkipDir for a .contents directory, whose
// listing reads the layer (TestContents), else err.
func skipContents(d fs.DirEntry, err error) error {
	if err == nil && d != nil && d.IsDir() && strings.HasSuffix(d.Name(), ".contents") {
		return fs.SkipDir
	}
	return err
}

// listTree runs ls -ld on everything of a mount but what is inside its
// .contents directories, and returns the output.
func listTree(dir string) (string, error) {
	out, err := exec.Command("find", dir, "-name", "*.contents", "-prune", "-o", "-exec", "ls", "-ld", "{}", "+").CombinedOutput()
	return string(out), err
}
