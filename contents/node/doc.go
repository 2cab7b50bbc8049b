// Package node is the model every format reader in contents implements: a
// read-only file system addressed by inode numbers (FS), the attributes it
// reports (Attr), the bytes it reads from (ReaderAt), the limits a reader
// applies to what an image claims (Limits), and ErrCorrupt for what an image
// gets wrong. It imports nothing of osimagefs, so formats and their
// consumers both depend on it and on nothing else of each other.
package node
