// Package ext4 reads ext2, ext3 and ext4 file system images lazily and
// read-only, as a node.FS: the superblock and the group descriptors, then
// only the inodes, extent tree nodes, indirect blocks and data blocks that a
// call needs. It owns the on-disk layout (superblock, group descriptors,
// inodes, extent trees, classic block maps, inline data, directory entries)
// and checks every number it reads against the image before using it. It
// verifies no checksums and replays no journal.
package ext4
