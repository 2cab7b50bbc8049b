package main

import (
	"context"
	"fmt"
	"io"
	"path"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/contents/node"
)

func newLsCmd(g *globalFlags) *cobra.Command {
	f := newBrowseFlags()
	var recursive bool
	c := &cobra.Command{
		Use:   "ls [flags] REFERENCE [PATH]",
		Short: "List a directory of an image, or inside one of its layers, without mounting",
		Long: `ls lists PATH of the image REFERENCE as ls -l would in a mount of it: the
top without PATH. Columns: mode, links, uid, gid (numbers, as stored in
the image), size (major, minor for a device), mtime (UTC), name, and
-> target for a symlink.

` + browsePathHelp,
		Example: `  osimagefs ls localhost:5000/os/debian:13
  osimagefs ls localhost:5000/os/debian:13 amd64/virtualization/root.squashfs.contents/etc
  osimagefs ls -R localhost:5000/os/debian:13 amd64/virtualization/disk.img.contents/p1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Errorf("%s takes REFERENCE and an optional PATH, got %d argument(s) (see --help)", cmd.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p := ""
			if len(args) == 2 {
				p = args[1]
			}
			b, err := openBrowser(cmd, g, f, args[0])
			if err != nil {
				return err
			}
			defer b.close()
			return b.ls(cmd.Context(), cmd.OutOrStdout(), p, recursive)
		},
	}
	f.register(c.Flags())
	c.Flags().BoolVarP(&recursive, "recursive", "R", false, "list subdirectories too")
	return c
}

// line is one row of a listing.
type line struct {
	name, link string
	attr       node.Attr
}

// ls lists p (one row for a file), and below it with recursive.
func (b *browser) ls(ctx context.Context, w io.Writer, p string, recursive bool) error {
	t, err := b.resolve(ctx, p, false)
	if err != nil {
		return err
	}
	if !t.isDir() {
		l, err := b.row(ctx, t, path.Base(t.path))
		if err != nil {
			return err
		}
		return printLine(w, l)
	}
	return b.lsDir(ctx, w, t, recursive, false)
}

// lsDir lists directory t; with recursive, its subdirectories after it,
// each under a heading as ls -R prints them.
func (b *browser) lsDir(ctx context.Context, w io.Writer, t target, recursive, heading bool) error {
	if heading {
		fmt.Fprintf(w, "\n%s:\n", t.path)
	}
	t, children, err := b.list(ctx, t)
	if err != nil {
		return err
	}
	var subdirs []target
	for _, c := range children {
		l, err := b.row(ctx, c, path.Base(c.path))
		if err != nil {
			return err
		}
		if err := printLine(w, l); err != nil {
			return err
		}
		if c.isDir() {
			subdirs = append(subdirs, c)
		}
	}
	if !recursive {
		return nil
	}
	for _, d := range subdirs {
		if err := b.lsDir(ctx, w, d, true, true); err != nil {
			return err
		}
	}
	return nil
}

// row describes t as a listing shows it: objects inside a layer as stored,
// the mount's own files and directories read-only and owned by root.
func (b *browser) row(ctx context.Context, t target, name string) (line, error) {
	switch {
	case t.tree != nil:
		l := line{name: name, attr: t.entry.Attr}
		if t.entry.Attr.Mode&syscall.S_IFMT == syscall.S_IFLNK {
			dest, err := t.tree.Readlink(ctx, t.entry.Ino)
			if err != nil {
				dest = "? (" + err.Error() + ")" // one unreadable link does not end the listing
			}
			l.link = dest
		}
		return l, nil
	case t.file != nil:
		return line{name: name, attr: node.Attr{Mode: syscall.S_IFREG | 0o444, Size: t.file.Size, Nlink: 1}}, nil
	}
	return line{name: name, attr: node.Attr{Mode: syscall.S_IFDIR | 0o555, Nlink: 2}}, nil
}

func printLine(w io.Writer, l line) error {
	a := l.attr
	size := fmt.Sprint(a.Size)
	if typ := a.Mode & syscall.S_IFMT; typ == syscall.S_IFCHR || typ == syscall.S_IFBLK {
		size = fmt.Sprintf("%d, %d", devMajor(a.Rdev), devMinor(a.Rdev))
	}
	when := "-"
	if !a.Mtime.IsZero() {
		when = a.Mtime.UTC().Format(time.DateTime)
	}
	name := printable(l.name)
	if l.link != "" {
		name += " -> " + printable(l.link)
	}
	_, err := fmt.Fprintf(w, "%s %3d %5d %5d %10s %s %s\n", modeString(a.Mode), a.Nlink, a.Uid, a.Gid, size, when, name)
	return err
}

func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// modeString is st_mode as ls -l prints it.
func modeString(m uint32) string {
	types := map[uint32]byte{syscall.S_IFDIR: 'd', syscall.S_IFLNK: 'l', syscall.S_IFCHR: 'c',
		syscall.S_IFBLK: 'b', syscall.S_IFIFO: 'p', syscall.S_IFSOCK: 's'}
	b := []byte("-rwxrwxrwx")
	if t, ok := types[m&syscall.S_IFMT]; ok {
		b[0] = t
	}
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit uint32, at int, set, unset byte) {
		if m&bit != 0 {
			if b[at] == '-' {
				b[at] = unset
			} else {
				b[at] = set
			}
		}
	}
	special(syscall.S_ISUID, 3, 's', 'S')
	special(syscall.S_ISGID, 6, 's', 'S')
	special(syscall.S_ISVTX, 9, 't', 'T')
	return string(b)
}
