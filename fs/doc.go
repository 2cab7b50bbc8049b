// Package fs serves an image.Tree as a read-only FUSE file system with
// go-fuse's fs API. The tree is built once, when the root is added, with
// persistent inodes: sizes come from descriptors, so stat, ls and find never
// fetch. Layer files read through a BlobReader (a lazy.Blob); documents are
// served from memory. Content is addressed by digest and never changes, so
// opens keep the kernel's page cache (FOPEN_KEEP_CACHE) and entries and
// attributes are cached for a long time. A layer complete and verified in
// the disk cache is handed to the kernel, which reads the cache file itself
// (FUSE passthrough, passthrough.go).
//
// Errors become errno values in one place, errno.go, which also logs them
// once with the path, digest and offset.
package fs
