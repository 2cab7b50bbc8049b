#!/usr/bin/env bash
# provision.sh installs the host tools that osimagefs's end-to-end tests and
# demo need, and fetches a Debian cloud kernel for qemu boots.
#
# Usage: scripts/provision.sh [--no-kernel]
#
# It is idempotent and quick when everything is already present: packages are
# checked with dpkg before apt is touched, `apt-get update` runs only when
# something has to be installed, and the kernel step is skipped when
# .cache/kernel/vmlinuz exists.
#
# Kernel layout (under the repo root, .cache/ is git-ignored):
#   .cache/kernel/vmlinuz  -> root/boot/vmlinuz-<version>
#   .cache/kernel/modules  -> root/lib/modules/<version>
#   .cache/kernel/version     the kernel release string, e.g. 6.1.0-42-cloud-amd64
# depmod is run on the unpacked modules, so modules/modules.dep exists.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KERNEL_DIR="$REPO/.cache/kernel"
WANT_KERNEL=1

for arg in "$@"; do
	case "$arg" in
	--no-kernel) WANT_KERNEL=0 ;;
	-h | --help)
		sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "provision: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

step() { echo "provision: $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

# Debian packages the tests and demo use. Keep in sync with test/fixture.
PACKAGES=(
	fuse3           # fusermount3 for the FUSE daemon
	e2fsprogs       # mkfs.ext4 -d
	squashfs-tools  # mksquashfs, unsquashfs
	xorriso         # ISO 9660 images
	busybox-static  # /bin/busybox for the guest initramfs
	qemu-system-x86 # boots the guest (TCG; no KVM here)
	cpio            # inspecting initramfs archives
	curl            # talking to the local registry in the demo
	kmod            # depmod for the cloud kernel's modules.dep
	xz-utils        # xz -dc for .ko.xz modules
	zstd            # zstd -dc for .ko.zst modules
	util-linux      # mount -o loop, losetup; mount -t fuse.osimagefs, mount -T
	systemd         # systemd-analyze verify of dist/systemd/osimagefs@.service
	attr            # getfattr, for the extended attributes of layer files
	prometheus      # a real scrape of the metrics endpoint (about 19 MB)
	qemu-block-extra # QEMU's curl block driver, a peer in make bench
	nbdkit          # nbdkit's curl plugin with readahead and cache filters, a peer in make bench
	dosfstools      # mkfs.vfat: the EFI system partition of the browsing fixtures
	mtools          # mcopy: files into a FAT image without mounting it
	fdisk           # sfdisk: GPT and MBR partition tables of the browsing fixtures
	lz4             # lz4 -l: initramfs archives compressed with lz4
	docker-registry # CNCF Distribution 2.8: the pull-through cache of the fleet tests (run by the tests, not as a service)
)

# missing_packages prints, one a line, the PACKAGES dpkg does not have installed.
missing_packages() {
	local status
	status="$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null || true)"
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		if ! grep -qE "^${pkg} ii" <<<"$status"; then
			echo "$pkg"
		fi
	done
}

# quiet runs a command, showing its output only when it fails.
quiet() {
	local out
	if ! out="$("$@" 2>&1)"; then
		echo "$out" >&2
		echo "provision: failed: $*" >&2
		return 1
	fi
}

APT_UPDATED=0
apt_update() {
	if [ "$APT_UPDATED" -eq 0 ]; then
		step "apt-get update"
		quiet $SUDO apt-get update
		APT_UPDATED=1
	fi
}

install_packages() {
	local missing
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		step "packages: all ${#PACKAGES[@]} present"
		return
	fi
	apt_update
	step "packages: installing ${missing[*]}"
	quiet $SUDO env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
	local still
	mapfile -t still < <(missing_packages)
	if [ "${#still[@]}" -ne 0 ]; then
		echo "provision: still missing after install: ${still[*]}" >&2
		exit 1
	fi
	# The tests start docker-registry themselves; the service the package
	# may have started would hold port 5000 for nothing.
	if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
		quiet $SUDO systemctl disable --now docker-registry
	fi
}

# kernel_package prints the versioned package that linux-image-cloud-amd64
# currently depends on, e.g. linux-image-6.1.0-42-cloud-amd64.
kernel_package() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' |
		grep -v unsigned | sort -V | tail -n1
}

install_kernel() {
	if [ -e "$KERNEL_DIR/vmlinuz" ]; then
		if [ ! -e "$KERNEL_DIR/modules/modules.dep" ]; then
			step "kernel: depmod"
			quiet depmod -b "$KERNEL_DIR/root" "$(cat "$KERNEL_DIR/version")"
		fi
		step "kernel: present ($(cat "$KERNEL_DIR/version" 2>/dev/null || readlink "$KERNEL_DIR/vmlinuz"))"
		return
	fi
	local pkg
	pkg="$(kernel_package)"
	if [ -z "$pkg" ]; then
		apt_update
		pkg="$(kernel_package)"
	fi
	if [ -z "$pkg" ]; then
		echo "provision: cannot resolve linux-image-cloud-amd64 to a versioned package" >&2
		exit 1
	fi
	step "kernel: downloading $pkg"

	mkdir -p "$KERNEL_DIR"
	local tmp
	tmp="$(mktemp -d "$KERNEL_DIR/.tmp.XXXXXX")"
	# shellcheck disable=SC2064 # expand $tmp now: it is local.
	trap "rm -rf '$tmp'" EXIT
	# apt-get download writes into the current directory. Package lists may be
	# stale (the pool file gone): refresh them once and retry.
	if ! (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
		apt_update
		pkg="$(kernel_package)"
		(cd "$tmp" && quiet apt-get download "$pkg")
	fi
	local debs vmlinuzes
	debs=("$tmp"/*.deb)
	dpkg-deb -x "${debs[0]}" "$tmp/root"
	vmlinuzes=("$tmp"/root/boot/vmlinuz-*)
	if [ ! -f "${vmlinuzes[0]}" ]; then
		echo "provision: ${debs[0]##*/} has no boot/vmlinuz-*" >&2
		exit 1
	fi
	local version="${vmlinuzes[0]##*/vmlinuz-}"
	if [ ! -d "$tmp/root/lib/modules/$version" ]; then
		echo "provision: ${debs[0]##*/} has no lib/modules/$version" >&2
		exit 1
	fi
	# The package's postinst would run depmod; modules.dep lets the initramfs
	# builder pull in each module's dependencies.
	quiet depmod -b "$tmp/root" "$version"

	rm -rf "$KERNEL_DIR/root" "$KERNEL_DIR/modules" "$KERNEL_DIR/version"
	mv "$tmp/root" "$KERNEL_DIR/root"
	echo "$version" >"$KERNEL_DIR/version"
	ln -sfn "root/lib/modules/$version" "$KERNEL_DIR/modules"
	# vmlinuz last: its presence marks the step as done.
	ln -sfn "root/boot/vmlinuz-$version" "$KERNEL_DIR/vmlinuz"
	rm -rf "$tmp"
	trap - EXIT
	step "kernel: $version in ${KERNEL_DIR#"$REPO"/}"
}

install_packages
if [ "$WANT_KERNEL" -eq 1 ]; then
	install_kernel
else
	step "kernel: skipped (--no-kernel)"
fi
step "done"
