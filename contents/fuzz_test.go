package contents

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// walk visits everything under dir of t, reading a little of each file, within
// budget objects, and fails on anything a Tree must never hand out.
func walk(t testing.TB, tr *Tree, dir node.Ino, depth int, budget *int) {
	ctx := context.Background()
	ents, err := tr.List(ctx, dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if *budget--; *budget < 0 {
			return
		}
		if !safeName(e.Name) {
			t.Fatalf("unsafe name %q listed", e.Name)
		}
		switch e.Attr.Mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			if depth < 32 {
				walk(t, tr, e.Ino, depth+1, budget)
			}
		case syscall.S_IFREG:
			buf := make([]byte, min(e.Attr.Size, 64<<10))
			_, _ = tr.ReadAt(ctx, e.Ino, buf, 0)
		case syscall.S_IFLNK:
			_, _ = tr.Readlink(ctx, e.Ino)
		}
	}
}

// fuzzSeeds builds one small image of each format with the real tools.
func fuzzSeeds(f *testing.F) [][]byte {
	fixture.RequireTools(f, "mksquashfs", "mkfs.ext4", "mkfs.vfat", "mcopy", "xorriso", "cpio", "gzip", "sfdisk")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := f.TempDir()
	src := filepath.Join(d, "src")
	if err := fixture.WriteTree(src, map[string][]byte{"etc/os-release": []byte("ID=x\n"), "a/b/c": []byte(strings.Repeat("c", 3000))}); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink("../etc/os-release", filepath.Join(src, "a/link")); err != nil {
		f.Fatal(err)
	}
	at := func(n string) string { return filepath.Join(d, n) }
	steps := []error{
		fixture.MakeSquashfsWith(ctx, src, at("sq"), "-comp", "gzip", "-b", "4096"),
		fixture.MakeExt4(ctx, src, at("ext4"), 256<<10),
		fixture.MakeISO(ctx, src, at("iso"), "FUZZ"),
		fixture.MakeCpio(ctx, src, at("cpio"), "gzip"),
		fixture.MakeFAT(ctx, src, at("fat"), 12, 1),
	}
	for _, err := range steps {
		if err != nil {
			f.Fatal(err)
		}
	}
	// A GPT disk with the FAT image as its only partition, at sector 64.
	fat, err := os.ReadFile(at("fat"))
	if err != nil {
		f.Fatal(err)
	}
	disk := make([]byte, 64*512+len(fat)+64*512)
	if err := os.WriteFile(at("disk"), disk, 0o644); err != nil {
		f.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", at("disk"))
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nfirst-lba: 64\nstart=64, size=%d, type=U\n", len(fat)/512))
	if out, err := cmd.CombinedOutput(); err != nil {
		f.Fatalf("sfdisk: %v: %s", err, out)
	}
	disk, err = os.ReadFile(at("disk"))
	if err != nil {
		f.Fatal(err)
	}
	copy(disk[64*512:], fat)
	var seeds [][]byte
	for _, n := range []string{"sq", "ext4", "iso", "cpio", "fat"} {
		b, err := os.ReadFile(at(n))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, disk)
}

// FuzzContents opens anything as a layer, as the mount does, and walks it:
// no panic, no hang, no unsafe name, whatever the bytes.
func FuzzContents(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Open(context.Background(), nodetest.NewImage(b), int64(len(b)), "fuzz", node.Options{
			Limits: node.Limits{Entries: 1000, Objects: 10000, DirBytes: 1 << 20},
		})
		if err != nil {
			t.Fatalf("Open of an image in memory: %v (only a failed read may be an error)", err)
		}
		budget := 2000
		walk(t, tr, tr.Root(), 0, &budget)
	})
}
