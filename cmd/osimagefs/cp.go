package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

func newCpCmd(g *globalFlags) *cobra.Command {
	f := newBrowseFlags()
	var recursive bool
	c := &cobra.Command{
		Use:   "cp [flags] REFERENCE PATH DEST",
		Short: "Copy a file or directory out of an image, or out of one of its layers, without mounting",
		Long: `cp copies PATH of the image REFERENCE to DEST, as cp would from a mount of
it; into DEST when DEST is a directory. A directory needs -r. Files keep
their permission bits and mtime; symlinks are copied as symlinks (PATH
itself is followed if it is one); device nodes, FIFOs and sockets are
left out with a line on stderr. Each file is written next to its
destination and renamed into place once complete, so an interrupted cp
leaves no partial file.

` + browsePathHelp,
		Example: `  osimagefs cp localhost:5000/os/debian:13 amd64/virtualization/kernel ./vmlinuz
  osimagefs cp -r localhost:5000/os/debian:13 amd64/virtualization/root.squashfs.contents/etc ./etc`,
		Args: exactArgs(3, "REFERENCE, PATH and DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, t, err := openTarget(cmd, g, f, args[0], args[1], true)
			if err != nil {
				return err
			}
			defer b.close()
			dest := args[2]
			if st, err := os.Stat(dest); err == nil && st.IsDir() {
				dest = filepath.Join(dest, path.Base("/"+t.path))
			}
			if t.isDir() && !recursive {
				return usageError{fmt.Errorf("PATH %q is a directory: cp -r copies directories", t.path)}
			}
			return b.cp(cmd.Context(), cmd.ErrOrStderr(), t, dest)
		},
	}
	f.register(c.Flags())
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "copy directories and everything below them")
	return c
}

// cp copies t to dest.
func (b *browser) cp(ctx context.Context, stderr io.Writer, t target, dest string) error {
	if t.isDir() {
		return b.cpDir(ctx, stderr, t, dest)
	}
	if t.tree != nil {
		switch t.entry.Attr.Mode & syscall.S_IFMT {
		case syscall.S_IFLNK:
			dst, err := t.tree.Readlink(ctx, t.entry.Ino)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", t.path, err)
			}
			return symlinkInPlace(dst, dest)
		case syscall.S_IFREG:
		default:
			fmt.Fprintf(stderr, "cp: left out %s: %s\n", t.path, modeString(t.entry.Attr.Mode)[:1]+" (not a file, directory or symlink)")
			return nil
		}
	}
	return b.cpFile(ctx, t, dest)
}

// cpFile writes the file t to dest through a temporary file renamed into
// place, with t's permission bits and mtime.
func (b *browser) cpFile(ctx context.Context, t target, dest string) error {
	perm := os.FileMode(0o444)
	if t.tree != nil {
		perm = os.FileMode(t.entry.Attr.Mode & 0o777)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), tempPattern)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", t.path, dest, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	err = b.copyTo(ctx, tmp, t)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && t.tree != nil && !t.entry.Attr.Mtime.IsZero() {
		err = os.Chtimes(tmp.Name(), t.entry.Attr.Mtime, t.entry.Attr.Mtime)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dest)
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", t.path, dest, err)
	}
	return nil
}

// cpDir copies directory t and everything below it to dest.
func (b *browser) cpDir(ctx context.Context, stderr io.Writer, t target, dest string) error {
	if err := os.Mkdir(dest, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("copy %s: %w", t.path, err)
	}
	// What is there must be a directory, not a symlink copied a moment
	// ago under a name this file system takes for the same (a
	// case-insensitive one): nothing is ever written through a link.
	if st, err := os.Lstat(dest); err != nil || !st.IsDir() {
		return fmt.Errorf("copy %s: %s exists and is not a directory", t.path, dest)
	}
	t, children, err := b.list(ctx, t)
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := b.cp(ctx, stderr, c, filepath.Join(dest, path.Base(c.path))); err != nil {
			return err
		}
	}
	if t.tree != nil {
		a := t.entry.Attr
		if err := os.Chmod(dest, os.FileMode(a.Mode&0o777)); err != nil {
			return err
		}
		if !a.Mtime.IsZero() {
			return os.Chtimes(dest, a.Mtime, a.Mtime)
		}
	}
	return nil
}

// tempPattern names the files cp writes before renaming them into place:
// short, so that a name of 255 bytes still has room.
const tempPattern = ".osimagefs-*"

// symlinkInPlace makes dest a symlink to target, replacing what is there,
// through a temporary name renamed into place.
func symlinkInPlace(target, dest string) error {
	for range 100 {
		tmp := filepath.Join(filepath.Dir(dest), fmt.Sprintf(".osimagefs-%d", rand.Int64()))
		err := os.Symlink(target, tmp)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err == nil {
			if err = os.Rename(tmp, dest); err != nil {
				os.Remove(tmp)
			}
		}
		return err
	}
	return fmt.Errorf("symlink %s: no free temporary name", dest)
}
