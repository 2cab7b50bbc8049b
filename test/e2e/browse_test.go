package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestBrowseMounted browses an image the way an engineer does: lists and
// stats the tree (which fetches nothing), loop-mounts root.squashfs and
// disk.img from the mount and checks every file in them against its
// source, and lists and extracts image.iso with xorriso, which fetches
// only a small part of it.
func TestBrowseMounted(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "mount", "umount", "losetup", "find", "du", "stat")
	media := buildMedia(t)
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/browse", []layerFile{
		seedLayer("disk.img", media.disk(), "disk.img"),
		seedLayer("squashfs", media.squashfs(), "root.squashfs"),
		seedLayer("iso", media.iso(), "image.iso"),
	})
	// mountFresh mounts the image on a new directory through a new
	// counting proxy: empty caches, and a counter that sees all this
	// mount fetches.
	mountFresh := func(t *testing.T) (string, *registrytest.Counter) {
		c := registrytest.NewCountingProxy(t, reg.Host())
		dir := t.TempDir()
		startMount(t, img.ref(c.Host()), dir, "--plain-http")
		return dir, c
	}
	mnt, counter := mountFresh(t)
	tree := filepath.Join(mnt, "amd64", "virtualization")

	t.Run("find, du -a and stat outside .contents fetch nothing", func(t *testing.T) {
		counter.Reset()
		for _, args := range [][]string{
			// Opening a .contents directory reads the layer's metadata;
			// stat of it does not (TestContents).
			{"find", mnt, "-name", "*.contents", "-prune", "-o", "-print"},
			{"du", "-a", "--exclude=*.contents", mnt},
			{"find", mnt, "-name", "*.contents", "-prune", "-o", "-exec", "stat", "{}", "+"},
			{"find", mnt, "-name", "*.contents", "-prune", "-exec", "stat", "{}", "+"},
			{"find", mnt, "-name", "*.contents", "-prune", "-o", "-exec", "ls", "-ld", "{}", "+"},
		} {
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if args[0] == "find" && args[len(args)-1] == "-print" {
				for _, want := range []string{"disk.img", "root.squashfs", "image.iso", "manifest.json", "config.json"} {
					if !bytes.Contains(out, []byte("/amd64/virtualization/"+want+"\n")) {
						t.Errorf("find does not list amd64/virtualization/%s:\n%s", want, out)
					}
				}
			}
		}
		if n, r := settled(counter), counter.BlobRequests(); n != 0 || r != 0 {
			t.Fatalf("find, du -a, stat and ls -ld fetched %d blob bytes in %d requests, want none", n, r)
		}
	})

	for _, c := range []struct{ key, file string }{{"squashfs", "root.squashfs"}, {"disk", "disk.img"}} {
		t.Run("one small file of loop-mounted "+c.file, func(t *testing.T) {
			d := img.layers[c.file]
			dg := d.Digest.String()
			dir := loopMount(t, filepath.Join(tree, c.file))
			settled(counter)
			atMount := counter.BytesFor(dg)
			got, err := os.ReadFile(filepath.Join(dir, markerName))
			if err != nil {
				t.Fatal(err)
			}
			if want := media.Markers[c.key] + "\n"; string(got) != want {
				t.Fatalf("%s in %s: %q, want %q", markerName, c.file, got, want)
			}
			settled(counter)
			total := counter.BytesFor(dg)
			t.Logf("mount -o loop,ro %s, then cat a %d-byte file: fetched %s of %s (%.2f%%) in %d requests; the loop mount alone %s",
				c.file, len(got), mib(total), mib(d.Size), pct(total, d.Size), counter.RequestsFor(dg), mib(atMount))
		})
	}

	// Checking every file reads all of disk.img: through a mount straight
	// from the registry, as the counting proxy slows streaming down.
	direct := t.TempDir()
	startMount(t, img.ref(reg.Host()), direct, "--plain-http")
	for _, c := range []struct{ key, file string }{{"squashfs", "root.squashfs"}, {"disk", "disk.img"}} {
		t.Run("every file of loop-mounted "+c.file+" matches its source", func(t *testing.T) {
			start := time.Now()
			sums, err := fixture.TreeSums(loopMount(t, filepath.Join(direct, "amd64", "virtualization", c.file)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := treeDiff(sums, media.Sums[c.key]); diff != "" {
				t.Fatalf("%s: %s", c.file, diff)
			}
			t.Logf("%d files checked in %s", len(sums), time.Since(start).Round(time.Millisecond))
		})
	}

	t.Run("xorriso lists and extracts from the mounted image.iso", func(t *testing.T) {
		fixture.RequireTools(t, "xorriso")
		dir, counter := mountFresh(t)
		iso := filepath.Join(dir, "amd64", "virtualization", "image.iso")
		d := img.layers["image.iso"]
		ctx := t.Context()
		paths, err := fixture.ISOList(ctx, iso)
		if err != nil {
			t.Fatal(err)
		}
		if want := sortedKeys(media.Sums["iso"]); !slices.Equal(paths, want) {
			t.Fatalf("ISO lists %q, want %q", paths, want)
		}
		settled(counter)
		listed := counter.BytesFor(d.Digest.String())
		out := filepath.Join(t.TempDir(), markerName)
		if err := fixture.ISOExtract(ctx, iso, markerName, out); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := media.Markers["iso"] + "\n"; string(got) != want {
			t.Fatalf("extracted %s: %q, want %q", markerName, got, want)
		}
		settled(counter)
		total := counter.BytesFor(d.Digest.String())
		t.Logf("list %d files, then extract a %d-byte one: fetched %s of %s (%.1f%%) in %d requests; the listing alone %s",
			len(paths), len(got), mib(total), mib(d.Size), pct(total, d.Size), counter.RequestsFor(d.Digest.String()), mib(listed))
		if total*2 >= d.Size {
			t.Errorf("fetched %d bytes of the %d-byte ISO, want less than half", total, d.Size)
		}
	})
}

// loopMount mounts image read-only through a loop device on a new
// directory and returns it. At the test's end the directory is unmounted
// and the loop device detached, before the cleanups registered earlier
// (such as the osimagefs mount that image lives on) run.
func loopMount(t *testing.T, image string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", image, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop,ro %s: %v\n%s", image, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
		// The loop device lets go of image a moment after the unmount.
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command("losetup", "-j", image).Output()
			if err != nil || len(bytes.TrimSpace(out)) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("loop device still attached to %s:\n%s", image, out)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return dir
}
