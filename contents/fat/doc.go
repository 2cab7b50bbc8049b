// Package fat reads FAT12, FAT16 and FAT32 file systems (EFI system
// partitions, boot floppies) as a node.FS: VFAT long names, 8.3 names with
// their case flags, and file contents read cluster run by cluster run. The
// FAT itself is read on demand in chunks kept in a bounded LRU, so opening
// a large partition reads its boot sector, its first FAT chunk and its root
// directory only.
package fat
