package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// bootMediaVersion names the cache entry of the boot media; bump it when
// the recipe changes.
const bootMediaVersion = "bench-boot-v2"

// bootMedia are the files a guest boots from, local copies: the boot
// guest of the e2e boot test (test/fixture/guest.go) on the same media
// (fixture.DefaultMedia: a 1 GiB ext4 disk.img, a squashfs and an ISO).
type bootMedia struct {
	Kernel, Initramfs, Cmdline, Disk, Squashfs, ISO string
	Markers                                         []string // the marker lines, in the order the guest prints them
}

// buildBootMedia returns the media under cacheDir/<bootMediaVersion>,
// building them there first unless an earlier run did (mkfs.ext4 of
// 900 MiB takes a while). The initramfs is built for the provisioned
// kernel under repo/.cache/kernel.
func buildBootMedia(ctx context.Context, repo, cacheDir string) (*bootMedia, error) {
	kdir := filepath.Join(repo, ".cache", "kernel")
	dir := filepath.Join(cacheDir, bootMediaVersion)
	m := &bootMedia{
		Kernel: filepath.Join(kdir, "vmlinuz"), Initramfs: filepath.Join(dir, "initramfs"), Cmdline: filepath.Join(dir, "cmdline"),
		Disk: filepath.Join(dir, "disk.img"), Squashfs: filepath.Join(dir, "root.squashfs"), ISO: filepath.Join(dir, "image.iso"),
	}
	if _, err := os.Stat(m.Kernel); err != nil {
		return nil, fmt.Errorf("guest kernel: %w (run scripts/provision.sh)", err)
	}
	meta := filepath.Join(dir, "markers.json")
	if raw, err := os.ReadFile(meta); err == nil && json.Unmarshal(raw, &m.Markers) == nil && len(m.Markers) == 3 {
		return m, nil
	}
	tmp := dir + ".build"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "out")
	fm, err := fixture.MakeMedia(ctx, filepath.Join(tmp, "src"), out, fixture.DefaultMedia)
	if err != nil {
		return nil, err
	}
	if err := fixture.BuildInitramfs(ctx, filepath.Join(out, "initramfs"), "", filepath.Join(kdir, "modules"), fixture.GuestModules, fixture.GuestInit); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "cmdline"), []byte(fixture.GuestCmdline), 0o644); err != nil {
		return nil, err
	}
	markers := []string{fm.Markers["disk"], fm.Markers["squashfs"], fm.Markers["iso"]}
	raw, err := json.Marshal(markers)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, "markers.json"), raw, 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(out, dir); err != nil {
		return nil, fmt.Errorf("install boot media: %w", err)
	}
	m.Markers = markers
	return m, nil
}
