// Package iso9660 reads ISO 9660 images as a node.FS: Rock Ridge names,
// modes, owners, times, symlinks, device numbers and hard links when the
// image has them, else Joliet names, else the plain ISO names mapped as
// Linux's map=normal does. Directories and files are read where their
// records point, when they are first asked for.
//
// It is our own small reader rather than go-diskfs's iso9660: that one
// reads the system area and whole path tables up front, allocates from
// sizes in the image, is addressed by path (no record positions to number
// objects by) and reads a file through a path walk per open.
package iso9660
