// Package squashfs reads squashfs 4.0 images as a node.FS: directories,
// regular files (blocks, holes and fragment tails), symlinks, devices,
// fifos and sockets, compressed with gzip, xz (BCJ filters included),
// zstd, lz4 or lzo, or stored uncompressed.
//
// It owns the on-disk format only: the superblock, metadata blocks, the
// inode, directory, fragment and id tables, and bounded decompression.
// Every decompressed block goes through the caller's blockcache, so a
// block is decompressed once however often it is read. Inode numbers are
// the inode references of the format, plus one, so hard links share one
// and a lookup needs no table. Xattrs, the export table and the legacy
// lzma compressor are not read.
package squashfs
