package publish

import (
	"log/slog"
	"path"
	"strings"

	"github.com/osimagefs/osimagefs/image"
)

// Options describe one push: one platform of an OS image and where it goes.
// The zero value of every field but Reference, Architecture and Files means
// the documented default.
type Options struct {
	// Reference is the tag to push to, "registry/repository:tag"
	// (":latest" when no tag is given). A digest reference is refused: the
	// index is pushed to the tag.
	Reference string

	// OS is the index entry's platform.os; "" means "linux".
	OS string
	// Architecture is the index entry's platform.architecture and the
	// manifest's architecture annotation, a GOARCH name (amd64, arm64, ...).
	// Required.
	Architecture string
	// Variant is the manifest's variant annotation (virtualization, metal,
	// kvm, ...), the directory the mount shows the files in; "" means
	// "default". It is also written as an annotation of the index entry.
	Variant string
	// Title is the manifest's org.opencontainers.image.title; "" means
	// "<last element of the repository> <variant> (<architecture>)".
	Title string

	// Files are the layers. At least one must be given.
	Files Files
	// CommandLine is the kernel command line; "" means none. Surrounding
	// white space (a file's final newline) is removed.
	CommandLine string

	// Format selects the media types; "" means FormatOpenKCM.
	Format Format

	// NoChunkTables leaves out the chunk tables. By default every file
	// larger than one piece (integrity.PieceSizeFor its size) gets a
	// table, built while the file is hashed, pushed as a blob and listed
	// in the manifest's layers after the files, with media type
	// image.MediaTypeChunkTable, the annotation image.AnnotationChunkTableOf
	// naming the file's layer, and no title: the mount checks every piece
	// with it before a reader gets it.
	NoChunkTables bool

	// AddToIndex merges the new manifest into the index already at
	// Reference: an entry of the same os, architecture and variant is
	// replaced, others are kept. Without it (or when there is nothing at
	// Reference yet) the tag gets an index of this one platform.
	AddToIndex bool

	// Connection is how to reach the registry.
	Connection

	// Logger receives debug lines about what is done; nil is silent.
	Logger *slog.Logger
	// Progress observes hashing and uploading; nil reports nothing.
	Progress Progress
}

// Files are the paths of the files of one platform; "" leaves a role out.
// Each becomes one layer whose org.opencontainers.image.title is the
// role's file name in the mounted tree (disk.img, kernel, ...).
type Files struct {
	Disk      string // raw disk image: disk.img
	Kernel    string // kernel: kernel
	Initramfs string // initramfs: initramfs
	Squashfs  string // root file system: root.squashfs
	UKI       string // unified kernel image: uki.efi
	ISO       string // ISO image: image.iso
}

// roleFile is one role's file.
type roleFile struct {
	role image.Role
	path string
}

// list returns the given files in manifest order.
func (f Files) list() []roleFile {
	all := []roleFile{
		{image.RoleDisk, f.Disk},
		{image.RoleKernel, f.Kernel},
		{image.RoleInitramfs, f.Initramfs},
		{image.RoleSquashfs, f.Squashfs},
		{image.RoleUKI, f.UKI},
		{image.RoleISO, f.ISO},
	}
	out := all[:0]
	for _, rf := range all {
		if rf.path != "" {
			out = append(out, rf)
		}
	}
	return out
}

func (o Options) os() string {
	if o.OS == "" {
		return "linux"
	}
	return o.OS
}

func (o Options) variant() string {
	if o.Variant == "" {
		return "default"
	}
	return o.Variant
}

func (o Options) title(repository string) string {
	if o.Title != "" {
		return o.Title
	}
	return path.Base(repository) + " " + o.variant() + " (" + o.Architecture + ")"
}

func (o Options) commandLine() string { return strings.TrimSpace(o.CommandLine) }

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// validate checks everything that does not need the file system or the
// registry.
func (o Options) validate() error {
	if err := checkArchitecture(o.Architecture); err != nil {
		return err
	}
	if err := checkElement("os", o.os()); err != nil {
		return err
	}
	if err := checkElement("variant", o.variant()); err != nil {
		return err
	}
	if err := o.Format.validate(); err != nil {
		return err
	}
	if len(o.Files.list()) == 0 {
		return ErrNoFiles
	}
	return nil
}
