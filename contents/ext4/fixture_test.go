package ext4

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// openImage opens the image file at path as an FS.
func openImage(t testing.TB, path string, opt node.Options) (*fsys, *nodetest.Image) {
	t.Helper()
	r := nodetest.File(t, path)
	fs, err := Open(context.Background(), r, r.Size(), opt)
	if err != nil {
		t.Fatalf("Open %s: %v", path, err)
	}
	return fs.(*fsys), r
}

// mkfs builds an image of size bytes at out from src with mkfs.ext4 -d and
// the project's flags plus extra.
func mkfs(t testing.TB, src, out string, size int64, extra ...string) {
	t.Helper()
	fixture.RequireTools(t, "mkfs.ext4")
	if err := os.Truncate(out, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	args := append([]string{"-q", "-F", "-L", "osimage", "-E", "root_owner=0:0"}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "has_journal") && !contains(extra, "ext3") {
		args = append(args, "-O", "^has_journal")
	}
	args = append(args, "-d", src, out)
	ctx := fixture.Context(t, 2*time.Minute)
	if b, err := exec.CommandContext(ctx, "mkfs.ext4", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %v: %v: %s", args, err, b)
	}
}

// indexDirs makes e2fsck build hash tree indexes for the image's large
// directories, which mkfs.ext4 -d leaves linear.
func indexDirs(t testing.TB, img string) {
	t.Helper()
	fixture.RequireTools(t, "e2fsck")
	ctx := fixture.Context(t, time.Minute)
	b, err := exec.CommandContext(ctx, "e2fsck", "-fyD", img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("e2fsck -fyD %s: %v: %s", img, err, b)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// blockSizes are the file sizes around a block boundary that the tree holds.
var blockSizes = []int{0, 1, 59, 60, 61, 100, 1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536, 65537}

// makeTree fills dir with what the tests compare: files of many sizes, a
// large file, sparse and fragmented files, nested directories, a directory
// of 2000 entries, symlinks fast and slow, a hard link pair, special mode
// bits, owners, a fifo, a socket and, as root, devices.
func makeTree(t testing.TB, dir string, big int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range blockSizes {
		write(filepath.Join("sizes", "f"+strconv.Itoa(n)), random(n), 0o644)
	}
	write("big", random(big), 0o600)
	// sparse: data, holes and an ending hole, at unaligned places.
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 300 << 10, 1<<20 + 17, 3<<20 - 5} {
		if _, err := sp.WriteAt(random(70<<10+3), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Truncate(5 << 20); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	// sparse-far: data past 64 MiB, in the triple indirect tree of a block
	// map with 1 KiB blocks.
	far, err := os.Create(filepath.Join(dir, "sparse-far"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := far.WriteAt(random(5000), 70<<20+123); err != nil {
		t.Fatal(err)
	}
	far.Close()
	// fragmented: 4 KiB of data every 128 KiB, so many extents (at any block
	// size) that the tree needs an index node.
	fr, err := os.Create(filepath.Join(dir, "fragmented"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(60) {
		if _, err := fr.WriteAt(random(4096), i<<17); err != nil {
			t.Fatal(err)
		}
	}
	fr.Close()
	write("a/b/c/d/deep", []byte("deep\n"), 0o644)
	write("a/b/other", random(5000), 0o640)
	for i := range 2000 {
		write(filepath.Join("many", "entry-with-a-longish-name-"+strconv.Itoa(i)), nil, 0o644)
	}
	write("modes/setuid", []byte("u"), 0o755)
	write("modes/setgid", []byte("g"), 0o755)
	must(t, os.Chmod(filepath.Join(dir, "modes/setuid"), 0o755|os.ModeSetuid))
	must(t, os.Chmod(filepath.Join(dir, "modes/setgid"), 0o755|os.ModeSetgid))
	must(t, os.MkdirAll(filepath.Join(dir, "modes/sticky"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "modes/sticky"), 0o777|os.ModeSticky))
	must(t, os.Symlink("a/b/c/d/deep", filepath.Join(dir, "fastlink")))
	must(t, os.Symlink(strings.Repeat("long/target/", 10)+"end", filepath.Join(dir, "slowlink")))
	must(t, os.Symlink(strings.Repeat("x", 59), filepath.Join(dir, "link59")))
	must(t, os.Symlink(strings.Repeat("y", 60), filepath.Join(dir, "link60")))
	write("hard1", []byte("linked content\n"), 0o644)
	must(t, os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "a/hard2")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	if l, err := net.Listen("unix", filepath.Join(dir, "sock")); err == nil {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	if os.Geteuid() == 0 {
		must(t, os.Chown(filepath.Join(dir, "sizes/f1"), 1234, 5678))
		must(t, os.Chown(filepath.Join(dir, "a/b/other"), 70000, 80000))
		must(t, os.Lchown(filepath.Join(dir, "slowlink"), 4242, 4343))
		must(t, unix.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mknod(filepath.Join(dir, "disk"), syscall.S_IFBLK|0o660, int(unix.Mkdev(8, 1))))
		must(t, unix.Mknod(filepath.Join(dir, "bigdev"), syscall.S_IFCHR|0o600, int(unix.Mkdev(300, 70000))))
	}
	// Times: whole seconds in the past and one with nanoseconds.
	for i, name := range []string{"sizes/f0", "big", "a/b/other", "fifo"} {
		tm := time.Unix(1_500_000_000+int64(i)*1000, int64(i)*123_456_789)
		must(t, os.Chtimes(filepath.Join(dir, name), tm, tm))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
