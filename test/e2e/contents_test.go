package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	encbin "encoding/binary"
	"encoding/hex"
	"errors"

	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// caps says what a format stores, so that a walk compares only that.
type caps struct {
	modes, owners, mtimes, links, hardlinks, devices bool
	// mtimeSlack is how far a stored mtime may be from the source's (FAT
	// keeps even seconds).
	mtimeSlack time.Duration
	// extra names the mount may show at the top that the source lacks
	// (lost+found of ext4).
	extra []string
}

var (
	unixCaps = caps{modes: true, owners: true, mtimes: true, links: true, hardlinks: true, devices: true}
	fatCaps  = caps{mtimes: true, mtimeSlack: 2 * time.Second}
)

// contentsFixtures are the images of the browsing tests, built once.
type contentsFixtures struct {
	src, fatSrc string
	files       map[string]string // tree file name -> image path, for the first image
	second      map[string]string // root.squashfs and initramfs compressed with zstd
}

func buildContentsFixtures(t *testing.T) *contentsFixtures {
	t.Helper()
	fixture.RequireTools(t, "mksquashfs", "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "xorriso", "cpio", "gzip", "zstd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := t.TempDir()
	f := &contentsFixtures{src: filepath.Join(d, "src"), fatSrc: filepath.Join(d, "fatsrc"), files: map[string]string{}, second: map[string]string{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fixture.WriteBrowseTree(f.src, fixture.BrowseTreeOptions{Seed: 1, Unix: true}))
	must(fixture.WriteBrowseTree(f.fatSrc, fixture.BrowseTreeOptions{Seed: 2, Data: 1 << 20}))
	at := func(name string) string { return filepath.Join(d, name) }
	must(fixture.MakeSquashfsWith(ctx, f.src, at("xz.squashfs"), "-comp", "xz", "-Xbcj", "x86"))
	must(fixture.MakeSquashfsWith(ctx, f.src, at("zstd.squashfs"), "-comp", "zstd"))
	must(fixture.MakeFAT(ctx, f.fatSrc, at("esp.fat"), 32, 40))
	must(fixture.MakeExt4(ctx, f.src, at("root.ext4"), 32<<20))
	must(fixture.MakeGPTDisk(ctx, at("disk.img"), []fixture.DiskPartition{
		{Image: at("esp.fat"), Type: "U", Name: "EFI"}, {Image: at("root.ext4"), Type: "L", Name: "root"}}))
	must(fixture.MakeISO(ctx, f.src, at("image.iso"), "OSIMAGEFS_BROWSE"))
	must(fixture.MakeCpio(ctx, f.src, at("initrd.gz"), "gzip"))
	must(fixture.MakeCpio(ctx, f.src, at("initrd.zst"), "zstd"))
	f.files = map[string]string{"disk.img": at("disk.img"), "root.squashfs": at("xz.squashfs"), "image.iso": at("image.iso"), "initramfs": at("initrd.gz")}
	f.second = map[string]string{"root.squashfs": at("zstd.squashfs"), "initramfs": at("initrd.zst")}
	return f
}

// contentsView is one .contents directory (or a partition of one) and the
// source tree it must show.
type contentsView struct {
	layer, sub, src string
	caps            caps
}

// TestContents browses inside every layer format through the mount and
// compares each object with the tree it was built from: names, types,
// modes, owners, mtimes, sizes, bytes, symlink targets, device numbers
// and hard links.
func TestContents(t *testing.T) {
	requireMountable(t)
	fx := buildContentsFixtures(t)
	reg := registrytest.Start(t)
	push := func(repo string, files map[string]string) mediaImage {
		roles := map[string]string{"disk.img": "disk.img", "root.squashfs": "squashfs", "image.iso": "iso", "initramfs": "initramfs"}
		var layers []layerFile
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range files {
				if !yield(k) {
					return
				}
			}
		}) {
			layers = append(layers, seedLayer(roles[name], files[name], name))
		}
		return pushMediaImage(t, reg.Host(), repo, layers)
	}
	first := push("os/contents", fx.files)
	second := push("os/contents-zstd", fx.second)

	counter := registrytest.NewCountingProxy(t, reg.Host())
	mnt := t.TempDir()
	startMount(t, first.ref(counter.Host()), mnt, "--plain-http")
	top := filepath.Join(mnt, "amd64", "virtualization")

	t.Run("stat and ls of the tree fetch nothing", func(t *testing.T) {
		counter.Reset()
		out, err := exec.Command("ls", "-la", top).CombinedOutput()
		if err != nil {
			t.Fatalf("ls -la: %v\n%s", err, out)
		}
		for _, name := range []string{"disk.img", "root.squashfs", "image.iso", "initramfs"} {
			if !bytes.Contains(out, []byte(" "+name+".contents\n")) {
				t.Errorf("ls -la %s does not show %s.contents:\n%s", top, name, out)
			}
			st, err := os.Stat(filepath.Join(top, name+".contents"))
			if err != nil || !st.IsDir() {
				t.Fatalf("stat %s.contents: %v", name, err)
			}
		}
		if n := settled(counter); n != 0 {
			t.Fatalf("stat of the tree and its .contents directories fetched %d blob bytes, want none", n)
		}
	})

	views := []contentsView{
		{"root.squashfs", "", fx.src, unixCaps},
		{"image.iso", "", fx.src, unixCaps},
		{"initramfs", "", fx.src, unixCaps},
		{"disk.img", "p1", fx.fatSrc, fatCaps},
		{"disk.img", "p2", fx.src, withExtra(unixCaps, "lost+found")},
	}
	for _, v := range views {
		t.Run("walk "+v.layer+".contents/"+v.sub, func(t *testing.T) {
			compareTrees(t, v.src, filepath.Join(top, v.layer+".contents", v.sub), v.caps)
		})
	}

	t.Run("listing the squashfs root fetches at most 5 percent", func(t *testing.T) {
		c := registrytest.NewCountingProxy(t, reg.Host())
		dir := t.TempDir()
		startMount(t, first.ref(c.Host()), dir, "--plain-http")
		sq := first.layers["root.squashfs"]
		ents, err := os.ReadDir(filepath.Join(dir, "amd64/virtualization/root.squashfs.contents"))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			t.Fatal("the squashfs root lists nothing")
		}
		got := settled(c)
		t.Logf("listing the squashfs root fetched %d of %d bytes (%.1f %%)", got, sq.Size, 100*float64(got)/float64(sq.Size))
		if got*20 > sq.Size {
			t.Fatalf("listing the squashfs root fetched %d bytes, more than 5 %% of its %d", got, sq.Size)
		}
	})

	t.Run("bytes fetched per format", func(t *testing.T) {
		for _, v := range []struct{ layer, root, small string }{
			{"root.squashfs", "", "etc/os-release"},
			{"image.iso", "", "etc/os-release"},
			{"initramfs", "", "etc/os-release"},
			{"disk.img", "p2", "etc/os-release"},
			{"disk.img", "p1", "etc/os-release"},
		} {
			c := registrytest.NewCountingProxy(t, reg.Host())
			dir := t.TempDir()
			startMount(t, first.ref(c.Host()), dir, "--plain-http")
			base := filepath.Join(dir, "amd64/virtualization", v.layer+".contents", v.root)
			if _, err := os.ReadDir(base); err != nil {
				t.Fatal(err)
			}
			listed := settled(c)
			if _, err := os.ReadFile(filepath.Join(base, v.small)); err != nil {
				t.Fatal(err)
			}
			read := settled(c) - listed
			t.Logf("BYTES %s.contents/%s: list the root %d, then read %s %d, of a %d-byte layer",
				v.layer, v.root, listed, v.small, read, first.layers[v.layer].Size)
		}
	})

	t.Run("zstd", func(t *testing.T) {
		dir := t.TempDir()
		startMount(t, second.ref(reg.Host()), dir, "--plain-http")
		for _, layer := range []string{"root.squashfs", "initramfs"} {
			compareTrees(t, fx.src, filepath.Join(dir, "amd64/virtualization", layer+".contents"), unixCaps)
		}
	})

	t.Run("ls, cat and cp as a user without root or FUSE", func(t *testing.T) {
		testCLIAsUser(t, first.ref(reg.Host()), fx.src)
	})

	t.Run("a corrupt image is EIO with one log line, an unknown one empty", func(t *testing.T) {
		// The squashfs with its directory table (xz-compressed, with a
		// CRC) garbled, and random bytes as an initramfs.
		raw, err := os.ReadFile(fx.files["root.squashfs"])
		if err != nil {
			t.Fatal(err)
		}
		dirTable := encbin.LittleEndian.Uint64(raw[72:])
		for i := dirTable + 8; i < dirTable+40; i++ {
			raw[i] ^= 0x5a
		}
		d := t.TempDir()
		bad, junk := filepath.Join(d, "bad.squashfs"), filepath.Join(d, "junk")
		if err := os.WriteFile(bad, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(junk, bytes.Repeat([]byte("not an initramfs "), 1<<14), 0o644); err != nil {
			t.Fatal(err)
		}
		img := push("os/contents-corrupt", map[string]string{"root.squashfs": bad, "initramfs": junk})
		dir := t.TempDir()
		m := startMount(t, img.ref(reg.Host()), dir, "--plain-http")
		v := filepath.Join(dir, "amd64/virtualization")
		for range 3 {
			if _, err := os.ReadDir(filepath.Join(v, "root.squashfs.contents")); !errors.Is(err, syscall.EIO) {
				t.Fatalf("listing a squashfs whose directory table is garbage: %v, want EIO", err)
			}
		}
		for range 2 {
			if ents, err := os.ReadDir(filepath.Join(v, "initramfs.contents")); err != nil || len(ents) != 0 {
				t.Fatalf("an unrecognised initramfs: %d entries, %v; want an empty directory", len(ents), err)
			}
		}
		logs := m.stderr.String()
		warnings := func(msg string) int {
			n := 0
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, msg) {
					n++
				}
			}
			return n
		}
		if n := warnings("contents: corrupt image"); n != 1 {
			t.Errorf("%d warnings for the corrupt squashfs, want 1:\n%s", n, logs)
		}
		if n := warnings("contents: showing an empty directory"); n != 1 {
			t.Errorf("%d warnings for the unrecognised initramfs, want 1:\n%s", n, logs)
		}
	})

	t.Run("--contents=false hides them", func(t *testing.T) {
		dir := t.TempDir()
		startMount(t, first.ref(reg.Host()), dir, "--plain-http", "--contents=false")
		ents, err := os.ReadDir(filepath.Join(dir, "amd64/virtualization"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".contents") {
				t.Fatalf("--contents=false still shows %s", e.Name())
			}
		}
	})

	t.Run("device nodes never open", func(t *testing.T) {
		fixture.RequireRoot(t, "the source tree has device nodes only when built as root")
		p := filepath.Join(top, "root.squashfs.contents/dev/null")
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&os.ModeCharDevice == 0 {
			t.Fatalf("dev/null: %v, mode %v; want a character device", err, st.Mode())
		}
		if f, err := os.Open(p); err == nil {
			f.Close()
			t.Fatal("a device node inside the image opened as a device")
		}
	})
}

// testCLIAsUser runs ls, cat and cp as a user who is not root, with no
// FUSE mount and a cache of that user's own, and checks what they print
// and copy against the source.
func testCLIAsUser(t *testing.T, ref, src string) {
	fixture.RequireRoot(t, "to run the commands as another user")
	const nobody = 65534
	// Not under t.TempDir(), whose parent only root may enter.
	home, err := os.MkdirTemp("", "osimagefs-nobody-")
	if err == nil {
		err = os.Chmod(home, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	bin := filepath.Join(home, "osimagefs")
	raw, err := os.ReadFile(plainBinary)
	if err == nil {
		err = os.WriteFile(bin, raw, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	user := filepath.Join(home, "user")
	if err := os.Mkdir(user, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(user, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = user
		cmd.Env = []string{"HOME=" + user, "XDG_CACHE_HOME=" + filepath.Join(user, ".cache"), "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("osimagefs %s as uid %d: %v\n%s", strings.Join(args, " "), nobody, err, errb.String())
		}
		return out.String(), errb.String()
	}
	const sq = "amd64/virtualization/root.squashfs.contents/"
	for _, p := range []string{"usr/lib/big.bin", "etc/os-release", "data/zero", "data/sparse"} {
		out, _ := run("cat", "--plain-http", ref, sq+p)
		want, err := os.ReadFile(filepath.Join(src, p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal([]byte(out), want) {
			t.Errorf("osimagefs cat %s: %d bytes differ from the source's %d", p, len(out), len(want))
		}
	}
	// A symlink inside the image is followed inside it: /etc/hostname.
	if out, _ := run("cat", "--plain-http", ref, sq+"etc/abs"); out != "browse\n" {
		t.Errorf("cat etc/abs (-> /etc/hostname) = %q", out)
	}
	out, _ := run("ls", "--plain-http", ref, sq+"etc")
	for _, want := range []string{"-rw-r--r--   1     0     0         49 2024-05-06 ", " os-release\n", " rel -> os-release\n", "-rw-------   1     0    42          7 "} {
		if !strings.Contains(out, want) {
			t.Errorf("osimagefs ls etc lacks %q:\n%s", want, out)
		}
	}
	out, _ = run("ls", "--plain-http", ref, "amd64/virtualization")
	if !strings.Contains(out, " root.squashfs.contents\n") {
		t.Errorf("osimagefs ls amd64/virtualization lacks root.squashfs.contents:\n%s", out)
	}
	run("cp", "-r", "--plain-http", ref, sq+"usr", filepath.Join(user, "usr"))
	for _, p := range []string{"usr/lib/big.bin", "usr/bin/tool"} {
		if fileSum(t, filepath.Join(user, p)) != fileSum(t, filepath.Join(src, p)) {
			t.Errorf("cp -r usr: %s differs from the source", p)
		}
	}
	if st, err := os.Lstat(filepath.Join(user, "usr/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("cp -r usr: usr/bin/tool mode %v, %v; want 0755", st.Mode(), err)
	}
}

func withExtra(c caps, names ...string) caps {
	c.extra = names
	return c
}

// compareTrees walks src and the mount's view of it side by side.
func compareTrees(t *testing.T, src, got string, c caps) {
	t.Helper()
	want := map[string]bool{}
	var inodes = map[uint64]string{} // source inode -> first path, for hard links
	err := filepath.Walk(src, func(p string, st os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want[rel] = true
		if !c.devices && st.Mode()&(os.ModeDevice|os.ModeNamedPipe|os.ModeSocket) != 0 {
			return nil
		}
		g, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		compareObject(t, rel, p, filepath.Join(got, rel), st, g, c)
		if c.hardlinks && st.Mode().IsRegular() {
			ino := st.Sys().(*syscall.Stat_t).Ino
			if first, ok := inodes[ino]; ok {
				f, _ := os.Lstat(filepath.Join(got, first))
				if !os.SameFile(f, g) {
					t.Errorf("%s and %s are hard links in the source but not in the mount", first, rel)
				}
			} else {
				inodes[ino] = rel
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(got, func(p string, st os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if slices.Contains(c.extra, strings.Split(rel, "/")[0]) {
			if st.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !want[rel] {
			t.Errorf("%s is in the mount, not in the source", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// compareObject compares one object of the source with the mount's.
func compareObject(t *testing.T, rel, srcPath, gotPath string, want, got os.FileInfo, c caps) {
	t.Helper()
	if want.Mode().Type() != got.Mode().Type() {
		t.Errorf("%s: type %v, want %v", rel, got.Mode().Type(), want.Mode().Type())
		return
	}
	ws, gs := want.Sys().(*syscall.Stat_t), got.Sys().(*syscall.Stat_t)
	if rel == "." {
		// The .contents directory (or pN) is the mount's own: 0555, the
		// mounting user's, so that stat of it reads nothing.
		return
	}
	if c.modes && ws.Mode&0o7777 != gs.Mode&0o7777 {
		t.Errorf("%s: mode %o, want %o", rel, gs.Mode&0o7777, ws.Mode&0o7777)
	}
	if c.owners && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
		t.Errorf("%s: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
	}
	if c.mtimes {
		if d := got.ModTime().Sub(want.ModTime()).Abs(); d > c.mtimeSlack && d >= time.Second {
			t.Errorf("%s: mtime %s, want %s", rel, got.ModTime().UTC(), want.ModTime().UTC())
		}
	}
	if c.devices && want.Mode()&os.ModeDevice != 0 && ws.Rdev != gs.Rdev {
		t.Errorf("%s: device %#x, want %#x", rel, gs.Rdev, ws.Rdev)
	}
	if c.hardlinks && want.Mode().IsRegular() && ws.Nlink != gs.Nlink {
		t.Errorf("%s: %d links, want %d", rel, gs.Nlink, ws.Nlink)
	}
	switch {
	case want.Mode().IsRegular():
		if want.Size() != got.Size() {
			t.Errorf("%s: size %d, want %d", rel, got.Size(), want.Size())
		}
		if ws, gs := fileSum(t, srcPath), fileSum(t, gotPath); ws != gs {
			t.Errorf("%s: sha256 %s, want %s", rel, gs, ws)
		}
	case want.Mode()&os.ModeSymlink != 0:
		wl, _ := os.Readlink(srcPath)
		gl, err := os.Readlink(gotPath)
		if err != nil || wl != gl {
			t.Errorf("%s: symlink to %q (%v), want %q", rel, gl, err, wl)
		}
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Errorf("open %s: %v", p, err)
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Errorf("read %s: %v", p, err)
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
