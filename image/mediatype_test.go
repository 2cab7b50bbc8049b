package image

import "testing"

func TestRoleOf(t *testing.T) {
	tests := []struct {
		name string
		mt   string
		want Role
	}{
		// Seed (OpenKCM), in the seed's own spelling.
		{"seed disk", "application/vnd.OpenKCM.image.disk.img", RoleDisk},
		{"seed kernel", "application/vnd.OpenKCM.image.kernel", RoleKernel},
		{"seed initramfs", "application/vnd.OpenKCM.image.initramfs", RoleInitramfs},
		{"seed squashfs", "application/vnd.OpenKCM.image.squashfs", RoleSquashfs},
		{"seed cmdline", "application/vnd.OpenKCM.image.cmdline", RoleCmdline},
		{"seed uki", "application/vnd.OpenKCM.image.uki", RoleUKI},
		{"seed iso", "application/vnd.OpenKCM.image.iso", RoleISO},
		{"seed lower case", "application/vnd.openkcm.image.kernel", RoleKernel},

		// IronCore current.
		{"ironcore rootfs is a disk", "application/vnd.ironcore.image.rootfs", RoleDisk},
		{"ironcore disk.img", "application/vnd.ironcore.image.disk.img", RoleDisk},
		{"ironcore kernel", "application/vnd.ironcore.image.kernel", RoleKernel},
		{"ironcore initramfs", "application/vnd.ironcore.image.initramfs", RoleInitramfs},
		{"ironcore squashfs", "application/vnd.ironcore.image.squashfs", RoleSquashfs},
		{"ironcore cmdline", "application/vnd.ironcore.image.cmdline", RoleCmdline},
		{"ironcore uki", "application/vnd.ironcore.image.uki", RoleUKI},
		{"ironcore iso", "application/vnd.ironcore.image.iso", RoleISO},

		// IronCore v1alpha1 and the onmetal legacy names.
		{"ironcore v1alpha1 rootfs", "application/vnd.ironcore.image.rootfs.v1alpha1.rootfs", RoleDisk},
		{"ironcore v1alpha1 vmlinuz", "application/vnd.ironcore.image.vmlinuz.v1alpha1.vmlinuz", RoleKernel},
		{"ironcore v1alpha1 initramfs", "application/vnd.ironcore.image.initramfs.v1alpha1.initramfs", RoleInitramfs},
		{"ironcore v1alpha1 squashfs", "application/vnd.ironcore.image.squashfs.v1alpha1.squashfs", RoleSquashfs},
		{"onmetal v1alpha1 rootfs", "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs", RoleDisk},
		{"onmetal v1alpha1 vmlinuz", "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", RoleKernel},
		{"onmetal v1alpha1 initramfs", "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs", RoleInitramfs},
		{"onmetal v1alpha1 squashfs", "application/vnd.onmetal.image.squashfs.v1alpha1.squashfs", RoleSquashfs},

		// Garden Linux.
		{"gardenlinux kernel", "application/io.gardenlinux.kernel", RoleKernel},
		{"gardenlinux initrd", "application/io.gardenlinux.initrd", RoleInitramfs},
		{"gardenlinux squashfs", "application/io.gardenlinux.squashfs", RoleSquashfs},

		// Case and parameters.
		{"upper case", "APPLICATION/VND.IRONCORE.IMAGE.ROOTFS", RoleDisk},
		{"mixed case onmetal", "Application/Vnd.OnMetal.Image.VMLinuz.V1Alpha1.VMLinuz", RoleKernel},
		{"mixed case gardenlinux", "application/IO.GardenLinux.Initrd", RoleInitramfs},
		{"parameter", "application/vnd.OpenKCM.image.kernel; charset=x", RoleKernel},
		{"parameter no space", "application/vnd.ironcore.image.rootfs;charset=x", RoleDisk},
		{"parameter gardenlinux", "application/io.gardenlinux.squashfs ; foo=bar", RoleSquashfs},
		{"surrounding space", "  application/vnd.ironcore.image.iso  ", RoleISO},

		// Unknown.
		{"empty", "", RoleUnknown},
		{"oci tar layer", "application/vnd.oci.image.layer.v1.tar", RoleUnknown},
		{"oci tar+gzip layer", "application/vnd.oci.image.layer.v1.tar+gzip", RoleUnknown},
		{"docker layer", "application/vnd.docker.image.rootfs.diff.tar.gzip", RoleUnknown},
		{"cosign", "application/vnd.dev.cosign.simplesigning.v1+json", RoleUnknown},
		{"in-toto", "application/vnd.in-toto+json", RoleUnknown},
		{"unknown vendor suffix", "application/vnd.ironcore.image.bootloader", RoleUnknown},
		{"vendor prefix only", "application/vnd.ironcore.", RoleUnknown},
		{"other vendor", "application/vnd.example.image.kernel", RoleUnknown},
		{"gardenlinux unknown", "application/io.gardenlinux.uki", RoleUnknown},
		{"gardenlinux with suffix", "application/io.gardenlinux.kernel.v2", RoleUnknown},
		{"config type is not a layer", "application/vnd.ironcore.image.config.v1+json", RoleUnknown},
		{"manifest type is not a layer", MediaTypeSeedArtifacts, RoleUnknown},
		{"missing type tree", "vnd.ironcore.image.rootfs", RoleUnknown},
		{"trailing junk", "application/vnd.ironcore.image.rootfsx", RoleUnknown},
		{"NUL inside", "application/vnd.ironcore.image.root\x00fs", RoleUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RoleOf(tt.mt); got != tt.want {
				t.Errorf("RoleOf(%q) = %q, want %q", tt.mt, got, tt.want)
			}
		})
	}
}

func TestRoleFileName(t *testing.T) {
	tests := []struct {
		role Role
		want string
	}{
		{RoleDisk, "disk.img"},
		{RoleKernel, "kernel"},
		{RoleInitramfs, "initramfs"},
		{RoleSquashfs, "root.squashfs"},
		{RoleCmdline, "cmdline"},
		{RoleUKI, "uki.efi"},
		{RoleISO, "image.iso"},
		{RoleIndex, "index.json"},
		{RoleManifest, "manifest.json"},
		{RoleConfig, "config.json"},
		{RoleUnknown, ""},
		{Role("bogus"), ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			if got := tt.role.FileName(); got != tt.want {
				t.Errorf("%q.FileName() = %q, want %q", tt.role, got, tt.want)
			}
			if tt.want != "" && !SafeName(tt.want) {
				t.Errorf("file name %q is not a SafeName", tt.want)
			}
		})
	}
}

func TestIsOSConfig(t *testing.T) {
	tests := []struct {
		mt   string
		want bool
	}{
		{"application/vnd.OpenKCM.image.config.v1+json", true},
		{"application/vnd.openkcm.image.config.v1+json", true},
		{"application/vnd.ironcore.image.config.v1+json", true},
		{"application/vnd.ironcore.image.config.v1alpha1+json", true},
		{"application/vnd.onmetal.image.config.v1alpha1+json", true},
		{"application/vnd.onmetal.image.config.v1+json", true},
		{"application/vnd.OpenKCM.image.config.v1alpha1+json", true},
		{"APPLICATION/VND.IRONCORE.IMAGE.CONFIG.V1+JSON", true},
		{"application/vnd.ironcore.image.config.v1+json; charset=utf-8", true},
		{MediaTypeSeedConfig, true},
		{MediaTypeIronCoreConfig, true},

		{"", false},
		{"application/vnd.oci.image.config.v1+json", false},
		{"application/vnd.docker.container.image.v1+json", false},
		{"application/vnd.dev.cosign.simplesigning.v1+json", false},
		{"application/vnd.oci.empty.v1+json", false},
		{"application/vnd.ironcore.image.config.v2+json", false},
		{"application/vnd.ironcore.image.config", false},
		{"application/vnd.ironcore.image.rootfs", false},
		{"application/vnd.example.image.config.v1+json", false},
		{"application/io.gardenlinux.config.v1+json", false},
	}
	for _, tt := range tests {
		t.Run(tt.mt, func(t *testing.T) {
			if got := IsOSConfig(tt.mt); got != tt.want {
				t.Errorf("IsOSConfig(%q) = %v, want %v", tt.mt, got, tt.want)
			}
		})
	}
}

func TestIsIndex(t *testing.T) {
	tests := []struct {
		mt   string
		want bool
	}{
		{MediaTypeOCIIndex, true},
		{MediaTypeDockerList, true},
		{"Application/VND.OCI.Image.Index.V1+JSON", true},
		{MediaTypeDockerList + "; charset=utf-8", true},
		{MediaTypeOCIManifest, false},
		{MediaTypeDockerManifest, false},
		{MediaTypeSeedArtifacts, false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.mt, func(t *testing.T) {
			if got := IsIndex(tt.mt); got != tt.want {
				t.Errorf("IsIndex(%q) = %v, want %v", tt.mt, got, tt.want)
			}
		})
	}
}
