package node

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/osimagefs/osimagefs/contents/blockcache"
)

// ReaderAt reads the bytes a file system is stored in, with the io.ReaderAt
// contract: n < len(p) only with an error, io.EOF at the end. lazy.Blob is one.
type ReaderAt interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// Ino names one object of an FS; hard links share it. 0 is never an Ino,
// and a format keeps its numbers at or below MaxIno, so that a disk can put
// several file systems side by side in one numbering.
type Ino uint64

// MaxIno is the largest Ino a format may hand out.
const MaxIno Ino = 1<<48 - 1

// Attr is what stat shows of an object, as stored in the image.
type Attr struct {
	// Mode is st_mode: the file type (syscall.S_IFREG, S_IFDIR, S_IFLNK,
	// S_IFCHR, S_IFBLK, S_IFIFO or S_IFSOCK) and the permission bits,
	// setuid, setgid and sticky included.
	Mode     uint32
	Uid, Gid uint32
	// Size is the length of a regular file's content or of a symlink's
	// target; for a directory, whatever the format stores (0 if nothing).
	Size  int64
	Mtime time.Time
	Nlink uint32
	// Rdev is a device node's number, as unix.Mkdev(major, minor) makes it.
	Rdev uint64
}

// DirEntry is one name in a directory. Names are never "", ".", ".." and
// never hold '/' or NUL: the contents package drops such entries.
type DirEntry struct {
	Name string
	Ino  Ino
}

// FS is one file system, archive or partition table inside a layer. Every
// method is safe for concurrent use, reads only what it needs, and returns
// an error wrapping ErrCorrupt for what the image gets wrong.
type FS interface {
	// Root is the Ino of the top directory.
	Root() Ino
	Attr(ctx context.Context, ino Ino) (Attr, error)
	// ReadDir lists a directory without "." and "..", in stored order.
	ReadDir(ctx context.Context, ino Ino) ([]DirEntry, error)
	// Readlink returns a symlink's target.
	Readlink(ctx context.Context, ino Ino) (string, error)
	// ReadAt reads a regular file's content, with the io.ReaderAt contract.
	ReadAt(ctx context.Context, ino Ino, p []byte, off int64) (int, error)
}

// ErrCorrupt marks an image whose structures do not hold together: a bad
// magic or checksum, a pointer out of range, a count over a Limit. The
// mount turns it into EIO and logs it once.
var ErrCorrupt = errors.New("corrupt image")

// ErrNotDir, ErrNotFile and ErrNotLink say a method was called on an object
// of the wrong type.
var (
	ErrNotDir  = errors.New("not a directory")
	ErrNotFile = errors.New("not a regular file")
	ErrNotLink = errors.New("not a symlink")
)

// Options are what a format's Open takes. The zero value is silent, caches
// no decompressed blocks and applies DefaultLimits().
type Options struct {
	// Log gets one line for each thing skipped or found corrupt; nil is silent.
	Log *slog.Logger
	// Blocks keeps decompressed blocks; nil decompresses on every read.
	Blocks *blockcache.Cache
	Limits Limits
}

// Logger returns Log, or a logger that discards everything.
func (o Options) Logger() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Limits bound what a reader believes of an image, so that a hostile one
// cannot make it allocate, loop or read without end. A zero field means
// its default in DefaultLimits.
type Limits struct {
	// Entries is the most names one directory may list.
	Entries int
	// DirBytes is the most bytes of one directory's listing read.
	DirBytes int64
	// Objects is the most objects (inodes, archive members) one FS may index in memory.
	Objects int
	// LinkBytes is the longest symlink target.
	LinkBytes int
	// Block is the largest block, compressed or not, a format reads at once.
	Block int
	// Depth is the deepest nesting of directories.
	Depth int
}

// DefaultLimits are generous for real OS images and small enough that a
// hostile image costs little.
func DefaultLimits() Limits {
	return Limits{
		Entries:   1 << 20,
		DirBytes:  64 << 20,
		Objects:   4 << 20,
		LinkBytes: 4096,
		Block:     1 << 20,
		Depth:     256,
	}
}

// Or returns l with every zero field set from DefaultLimits.
func (l Limits) Or() Limits {
	d := DefaultLimits()
	if l.Entries > 0 {
		d.Entries = l.Entries
	}
	if l.DirBytes > 0 {
		d.DirBytes = l.DirBytes
	}
	if l.Objects > 0 {
		d.Objects = l.Objects
	}
	if l.LinkBytes > 0 {
		d.LinkBytes = l.LinkBytes
	}
	if l.Block > 0 {
		d.Block = l.Block
	}
	if l.Depth > 0 {
		d.Depth = l.Depth
	}
	return d
}
