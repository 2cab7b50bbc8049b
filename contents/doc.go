// Package contents shows what is inside a layer: it recognises the format
// by its magic numbers (detect.go), opens the reader for it (squashfs,
// ext4, FAT, ISO 9660, a cpio initramfs, or a GPT or MBR disk whose
// partitions each hold one of those, disk.go), and wraps the result in a
// Tree (tree.go), the one place that turns a reader's panic into an error,
// drops names no file system may hold and refuses directory loops. The
// readers themselves live in the packages below; the FUSE mount and the
// ls, cat and cp commands both go through a Tree.
package contents
