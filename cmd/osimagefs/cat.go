package main

import (
	"bufio"

	"github.com/spf13/cobra"
)

func newCatCmd(g *globalFlags) *cobra.Command {
	f := newBrowseFlags()
	c := &cobra.Command{
		Use:   "cat [flags] REFERENCE PATH",
		Short: "Write a file of an image, or from inside one of its layers, to stdout without mounting",
		Long: `cat writes the bytes of the regular file PATH of the image REFERENCE to
stdout, as cat would from a mount of it. A symlink inside a layer is
followed within that layer.

` + browsePathHelp,
		Example: `  osimagefs cat localhost:5000/os/debian:13 amd64/virtualization/root.squashfs.contents/etc/os-release
  osimagefs cat localhost:5000/os/debian:13 amd64/virtualization/disk.img.contents/p1/EFI/BOOT/grub.cfg`,
		Args: exactArgs(2, "REFERENCE and PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, t, err := openTarget(cmd, g, f, args[0], args[1], true)
			if err != nil {
				return err
			}
			defer b.close()
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
			if err := b.copyTo(cmd.Context(), w, t); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	f.register(c.Flags())
	return c
}
