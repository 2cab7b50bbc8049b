package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// The boot scenario's media: the guest of the end-to-end boot test
// (test/fixture/guest.go) with the same shape of disks: a 1 GiB ext4
// disk.img that is mostly random files nobody reads, a squashfs and an
// ISO of a few MiB, each with a marker file holding a random line.
const (
	bootDiskSize  = 1 << 30
	bootDiskData  = 900 << 20
	bootDiskFiles = 72
	bootSqData    = 12 << 20
	bootSqFiles   = 24
	bootISOData   = 16 << 20
	bootISOFiles  = 10
	// bootMediaVersion names the cache entry; bump it when the recipe changes.
	bootMediaVersion = "bench-boot-v1"
)

// bootMedia are the files a guest boots from, local copies.
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
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	parts := []struct {
		key   string
		seed  int64
		files int
		bytes int64
		build func(tree, img string) error
		name  string
	}{
		{"disk", 101, bootDiskFiles, bootDiskData, func(tree, img string) error { return fixture.MakeExt4(ctx, tree, img, bootDiskSize) }, "disk.img"},
		{"squashfs", 102, bootSqFiles, bootSqData, func(tree, img string) error { return fixture.MakeSquashfs(ctx, tree, img) }, "root.squashfs"},
		{"iso", 103, bootISOFiles, bootISOData, func(tree, img string) error { return fixture.MakeISO(ctx, tree, img, "OSIMAGEFS_BENCH") }, "image.iso"},
	}
	var markers []string
	for _, p := range parts {
		tree := filepath.Join(tmp, "src-"+p.key)
		if _, err := fixture.RandomTree(tree, p.seed, p.files, p.bytes); err != nil {
			return nil, fmt.Errorf("%s tree: %w", p.key, err)
		}
		var r [16]byte
		_, _ = rand.Read(r[:])
		marker := "MARKER-" + strings.ToUpper(p.key) + "-" + hex.EncodeToString(r[:])
		if err := fixture.WriteTree(tree, map[string][]byte{fixture.MarkerName: []byte(marker + "\n")}); err != nil {
			return nil, err
		}
		if err := p.build(tree, filepath.Join(out, p.name)); err != nil {
			return nil, fmt.Errorf("build %s: %w", p.name, err)
		}
		if err := os.RemoveAll(tree); err != nil {
			return nil, err
		}
		markers = append(markers, marker)
	}
	if err := fixture.BuildInitramfs(ctx, filepath.Join(out, "initramfs"), "", filepath.Join(kdir, "modules"), fixture.GuestModules, fixture.GuestInit); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, "cmdline"), []byte(fixture.GuestCmdline), 0o644); err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(markers)
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
