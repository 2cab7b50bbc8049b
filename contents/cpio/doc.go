// Package cpio reads Linux initramfs images as a node.FS: what the kernel's
// init/initramfs.c unpacks. An image is a sequence of segments, each zero
// padding, an uncompressed newc/crc cpio archive, or a compressed stream
// (gzip, zstd, xz, lz4 legacy, bzip2, lzma) holding cpio archives itself;
// an early microcode cpio followed by a compressed main archive is the
// common case.
//
// Open scans the image once, streaming, and keeps an index of the members:
// path, attributes and where each file's data is (an offset in the image
// for an uncompressed segment, an offset in the decompressed stream for a
// compressed one). Uncompressed data is read lazily from the image;
// compressed data is kept in fixed pieces in the shared block cache, filled
// during the scan and rebuilt on a miss by decompressing the segment again.
//
// Members are applied like the kernel applies them: a later member with the
// same path replaces the earlier one (a directory over a directory only
// takes the new attributes), hard links (nlink >= 2 and the same dev/ino
// within one archive) share one Ino, and parents missing from the archive
// are made as 0755 root directories.
package cpio
