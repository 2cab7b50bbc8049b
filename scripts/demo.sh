#!/usr/bin/env bash
# make demo: a local registry, a sample OS image built and pushed to it,
# mounted with osimagefs, shown, and kept mounted until Ctrl-C.
# Set DEMO_EXIT=1 to tear down right after showing (used by the tests).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${OSIMAGEFS_BIN:-$REPO/bin/osimagefs}"
WORK="$(mktemp -d /tmp/osimagefs-demo.XXXXXX)"
MNT="$WORK/mnt"
LOOP="$WORK/loop"
REG_PID="" MOUNT_PID=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	set +e
	mountpoint -q "$LOOP" 2>/dev/null && umount "$LOOP"
	if [ -n "$MOUNT_PID" ] && kill -0 "$MOUNT_PID" 2>/dev/null; then
		kill -TERM "$MOUNT_PID"; wait "$MOUNT_PID"
	fi
	mountpoint -q "$MNT" 2>/dev/null && umount -l "$MNT"
	[ -n "$REG_PID" ] && kill -TERM "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
	rm -rf "$WORK"
	echo "demo: cleaned up"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

[ "$(id -u)" = 0 ] || { echo "demo: needs root (FUSE and loop mounts)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "demo: $BIN missing; run make demo" >&2; exit 1; }

say "starting a local CNCF Distribution registry"
go build -o "$WORK/registryd" "$REPO/test/registryd"
"$WORK/registryd" -dir "$WORK/registry" >"$WORK/registry.addr" &
REG_PID=$!
for _ in $(seq 100); do [ -s "$WORK/registry.addr" ] && break; sleep 0.05; done
HOST="$(head -1 "$WORK/registry.addr")"
echo "registry at $HOST"

say "building a sample image: ext4 disk, squashfs, ISO, kernel, cmdline"
mkdir -p "$WORK/rootfs/etc" "$WORK/rootfs/usr/share/demo" "$WORK/iso" "$MNT" "$LOOP"
printf 'NAME="osimagefs demo"\nVERSION_ID=1.0\n' >"$WORK/rootfs/etc/os-release"
head -c $((48 << 20)) /dev/urandom >"$WORK/rootfs/usr/share/demo/payload.bin"
echo "hello from inside disk.img" >"$WORK/rootfs/usr/share/demo/hello.txt"
truncate -s 96M "$WORK/disk.img"
mkfs.ext4 -q -F -d "$WORK/rootfs" -L demo "$WORK/disk.img"
mksquashfs "$WORK/rootfs" "$WORK/root.squashfs" -noappend -quiet -no-progress >/dev/null
echo "boot me" >"$WORK/iso/README.TXT"
xorriso -as mkisofs -R -J -V DEMO -o "$WORK/image.iso" "$WORK/iso" 2>/dev/null
KERNEL="$REPO/.cache/kernel/vmlinuz"
[ -f "$KERNEL" ] || { head -c $((8 << 20)) /dev/urandom >"$WORK/vmlinuz"; KERNEL="$WORK/vmlinuz"; }
ls -lh "$WORK"/disk.img "$WORK"/root.squashfs "$WORK"/image.iso "$KERNEL"

say "pushing it as $HOST/demo/os:1.0"
"$BIN" push --quiet --plain-http "$HOST/demo/os:1.0" --arch amd64 --variant virtualization \
	--disk "$WORK/disk.img" --kernel "$KERNEL" --squashfs "$WORK/root.squashfs" \
	--iso "$WORK/image.iso" --cmdline "console=ttyS0 root=/dev/vda ro"

say "osimagefs inspect --plain-http $HOST/demo/os:1.0"
"$BIN" inspect --plain-http "$HOST/demo/os:1.0"

say "osimagefs mount --plain-http $HOST/demo/os:1.0 $MNT"
"$BIN" mount --plain-http --cache-dir "$WORK/cache" "$HOST/demo/os:1.0" "$MNT" 2>"$WORK/mount.log" &
MOUNT_PID=$!
for _ in $(seq 200); do mountpoint -q "$MNT" && break; sleep 0.05; done
mountpoint -q "$MNT" || { cat "$WORK/mount.log"; exit 1; }

say "ls -lR $MNT   (sizes from descriptors: nothing fetched; -I leaves out what is inside the layers)"
ls -lR -I '*.contents' "$MNT"

V="$MNT/amd64/virtualization"
say "cat cmdline"
cat "$V/cmdline"; echo
say "4 KiB from the middle of disk.img (fetches one 64 KiB chunk of the 96 MiB blob)"
dd if="$V/disk.img" of="$WORK/block" bs=4k skip=12000 count=1 status=none
od -A d -t x1 "$WORK/block" | sed -n 1,4p
say "loop-mounting disk.img read-only and reading one file"
mount -o loop,ro "$V/disk.img" "$LOOP"
cat "$LOOP/etc/os-release" "$LOOP/usr/share/demo/hello.txt"
du -sh --apparent-size "$WORK/cache" | sed 's/^/disk cache now holds: /'

say "browsing inside the layers, without root or loop devices: <file>.contents/"
ls -l "$V/root.squashfs.contents/etc" "$V/image.iso.contents"
cat "$V/disk.img.contents/usr/share/demo/hello.txt" "$V/image.iso.contents/README.TXT"
say "the same without a mount: osimagefs ls and cat (works as any user)"
"$BIN" ls --plain-http --cache-dir "$WORK/cache" "$HOST/demo/os:1.0" amd64/virtualization/root.squashfs.contents/usr/share/demo
"$BIN" cat --plain-http --cache-dir "$WORK/cache" "$HOST/demo/os:1.0" amd64/virtualization/root.squashfs.contents/etc/os-release

if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
say "mounted at $MNT — explore it from another shell; Ctrl-C here unmounts and cleans up"
wait "$MOUNT_PID"
