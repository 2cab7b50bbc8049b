// Package blockcache keeps decompressed blocks of the file systems inside
// layers (squashfs blocks, stretches of a compressed initramfs), bounded in
// bytes and shared by every file system of a mount, so that a block is
// decompressed once however many reads touch it. Concurrent misses for one
// block run the decompression once.
package blockcache
