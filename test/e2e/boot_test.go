package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The guest (test/fixture/guest.go), shared with the boot benchmark.
var (
	bootModules  = fixture.GuestModules
	guestInit    = fixture.GuestInit
	guestCmdline = fixture.GuestCmdline
)

// TestBootFromMount boots a qemu guest straight from a mount of an image in
// a real registry: kernel, initramfs and command line from the tree, disk.img,
// root.squashfs and image.iso as its virtio disks. The guest mounts all
// three and prints a marker file from each. Only a small part of the 1 GiB
// disk may be fetched. Two guests booting at once from one mount fetch
// hardly more than one.
func TestBootFromMount(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "qemu-system-x86_64", "busybox")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kernel := fixture.RequireKernel(t, root)
	media := buildMedia(t)
	ctx := t.Context()

	// The local sources: the media, the cache's kernel, a fresh initramfs.
	local := t.TempDir()
	initramfs := filepath.Join(local, "initramfs")
	start := time.Now()
	if err := fixture.BuildInitramfs(ctx, initramfs, "", kernel.Modules, bootModules, guestInit); err != nil {
		t.Fatal(err)
	}
	t.Logf("initramfs for kernel %s built in %s", kernel.Version, time.Since(start).Round(time.Millisecond))
	cmdline := filepath.Join(local, "cmdline")
	if err := os.WriteFile(cmdline, []byte(guestCmdline), 0o644); err != nil {
		t.Fatal(err)
	}
	localFiles := vmFiles{kernel.Vmlinuz, initramfs, cmdline, media.disk(), media.squashfs(), media.iso()}

	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/boot", []layerFile{
		seedLayer("disk.img", media.disk(), "disk.img"),
		seedLayer("kernel", kernel.Vmlinuz, "kernel"),
		seedLayer("initramfs", initramfs, "initramfs"),
		seedLayer("squashfs", media.squashfs(), "root.squashfs"),
		seedLayer("cmdline", cmdline, "cmdline"),
		seedLayer("iso", media.iso(), "image.iso"),
	})
	disk := img.layers["disk.img"]

	// logFetched logs what c fetched, per file.
	logFetched := func(t *testing.T, c *registrytest.Counter) {
		t.Helper()
		for _, name := range []string{"kernel", "initramfs", "cmdline", "disk.img", "root.squashfs", "image.iso"} {
			d := img.layers[name]
			got := c.BytesFor(d.Digest.String())
			t.Logf("  %-13s fetched %10s of %10s (%5.1f%%) in %d requests",
				name, mib(got), mib(d.Size), pct(got, d.Size), c.RequestsFor(d.Digest.String()))
		}
	}

	// mountFresh mounts the image on a new directory, so with empty memory
	// and page caches (and the empty disk cache startMount gives each
	// mount), through a new counting proxy, which so sees all that this
	// mount fetches, whatever it does in the background.
	mountFresh := func(t *testing.T) (string, *mountProc, *registrytest.Counter) {
		c := registrytest.NewCountingProxy(t, reg.Host())
		dir := t.TempDir()
		m := startMount(t, img.ref(c.Host()), dir, "--plain-http")
		return filepath.Join(dir, "amd64", "virtualization"), m, c
	}

	var fromMount vmResult
	var oneBoot int64 // blob bytes one cold boot fetched
	ok := t.Run("one guest from the mount", func(t *testing.T) {
		tree, m, counter := mountFresh(t)
		fromMount = bootVM(ctx, treeVMFiles(tree))
		checkGuest(t, "guest from the mount", fromMount, media)
		oneBoot = settled(counter)
		got := counter.BytesFor(disk.Digest.String())
		t.Logf("booted from the mount in %s; the mount fetched %s in %d requests, of them disk.img %s of %s (%.2f%%)",
			fromMount.took.Round(time.Millisecond), mib(oneBoot), counter.BlobRequests(), mib(got), mib(disk.Size), pct(got, disk.Size))
		logFetched(t, counter)
		if got == 0 {
			t.Error("the guest fetched nothing of disk.img: did it read its disk from the mount?")
		}
		if got >= disk.Size/10 {
			t.Errorf("the guest fetched %d bytes of disk.img, want less than 10%% of its %d bytes", got, disk.Size)
		}
		if err := m.terminate(t); err != nil {
			t.Errorf("osimagefs exit: %v", err)
		}
	})

	t.Run("the same guest from local files", func(t *testing.T) {
		r := bootVM(ctx, localFiles)
		checkGuest(t, "guest from local files", r, media)
		t.Logf("boot time: from the mount %s, from local files %s", fromMount.took.Round(time.Millisecond), r.took.Round(time.Millisecond))
	})

	t.Run("two guests at once from a fresh mount", func(t *testing.T) {
		if !ok || oneBoot == 0 {
			t.Fatal("the single boot above failed, so there is nothing to compare with")
		}
		tree, m, counter := mountFresh(t)
		start := time.Now()
		res := bootVMs(ctx, treeVMFiles(tree), treeVMFiles(tree))
		took := time.Since(start)
		for i, r := range res {
			checkGuest(t, []string{"first guest", "second guest"}[i], r, media)
		}
		both := settled(counter)
		t.Logf("two guests booted at once in %s (%s and %s); fetched %s in %d requests, %.2fx one boot's %s",
			took.Round(time.Millisecond), res[0].took.Round(time.Millisecond), res[1].took.Round(time.Millisecond),
			mib(both), counter.BlobRequests(), float64(both)/float64(oneBoot), mib(oneBoot))
		logFetched(t, counter)
		if limit := oneBoot * 12 / 10; both > limit {
			t.Errorf("two guests fetched %d bytes, want at most 1.2x the %d bytes of one boot", both, oneBoot)
		}
		if err := m.terminate(t); err != nil {
			t.Errorf("osimagefs exit: %v", err)
		}
	})
}
