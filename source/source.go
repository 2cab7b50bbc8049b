package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/layout"
	"github.com/osimagefs/osimagefs/lazy"
	"github.com/osimagefs/osimagefs/profile"
)

// LayoutPrefix starts a reference to an OCI image layout directory:
// oci:DIR, oci:DIR:TAG or oci:DIR@DIGEST (layout.ParseRef). A reference
// that starts with it is always a layout, so a registry on a host named
// oci is written by another of its names (its FQDN or address).
const LayoutPrefix = "oci:"

// Source is where an image comes from. It is safe for concurrent use.
type Source interface {
	// ReadParts and StreamBlob: what lazy reads byte ranges of blobs with.
	lazy.Source
	// Manifest, Referrers and BlobUpTo: what integrity.Find and
	// profile.Find look up chunk tables and boot profiles with.
	integrity.Source
	// Blob reads a whole small blob (a config); with Manifest, it is
	// image.Fetcher.
	Blob(ctx context.Context, d ocispec.Descriptor) ([]byte, error)
	// Resolve reads the documents of the image the reference names and
	// lays out its tree; a tag is resolved once, and reads use only
	// digests from then on. platforms, when not empty, keeps only the
	// index entries matching one of them.
	Resolve(ctx context.Context, platforms []image.Platform) (*image.Tree, error)
	// Info describes the source.
	Info() Info
	// Close releases what the source holds open (a layout's blob files).
	Close() error
}

// A Source is what the image resolver, the chunk-table lookup and the
// boot-profile lookup read.
var (
	_ image.Fetcher    = Source(nil)
	_ integrity.Source = Source(nil)
	_ profile.Source   = Source(nil)
)

// Info describes a Source.
type Info struct {
	// Name names the source in log lines: the registry's host, or
	// oci:DIR.
	Name string
	// Registry and Repository label metrics: the registry's host and the
	// repository; for a layout, oci:DIR and "".
	Registry, Repository string
	// Local: the blobs are files on this host. Reading one whole costs a
	// pass over a local file, so each is hashed before any of it is
	// served (lazy.Options.CheckFirst), and a disk cache would only copy
	// them (none is used unless asked for).
	Local bool
}

// Options configure Open. The zero value is the documented default.
type Options struct {
	// Registry configures a registry's Store (blobstore.Options).
	Registry blobstore.Options
	// Logger gets a layout's debug lines; nil is silent (a registry's
	// go to Registry.Logger).
	Logger *slog.Logger
}

// Ref is a parsed reference, of a registry or of a layout.
type Ref struct {
	raw    string
	layout *layout.Ref // nil for a registry
}

// Parse parses ref: oci:DIR[:TAG|@DIGEST] is a layout (DIR must exist:
// the split between DIR and TAG is decided by the file system, see
// layout.ParseRef), anything else a registry reference, parsed when it is
// opened.
func Parse(ref string) (Ref, error) {
	rest, ok := strings.CutPrefix(ref, LayoutPrefix)
	if !ok {
		return Ref{raw: ref}, nil
	}
	lr, err := layout.ParseRef(rest)
	if err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", ref, err)
	}
	return Ref{raw: ref, layout: &lr}, nil
}

// String is the reference as given.
func (r Ref) String() string { return r.raw }

// Local reports whether the reference names files on this host (a
// layout), as Info.Local does once it is open.
func (r Ref) Local() bool { return r.layout != nil }

// Open opens the source r names. For a registry it authenticates, and ctx
// also bounds the referrers listings, made once per manifest and shared
// by everything that asks (blobstore.SharedReferrers); for a layout it
// reads oci-layout and index.json and finds the image.
func (r Ref) Open(ctx context.Context, opts Options) (Source, error) {
	if r.layout == nil {
		store, err := blobstore.Open(ctx, r.raw, opts.Registry)
		if err != nil {
			return nil, err
		}
		return registry{blobstore.NewSharedReferrers(ctx, store)}, nil
	}
	l, err := layout.Open(ctx, *r.layout, layout.Options{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.raw, err)
	}
	return layoutSource{l}, nil
}

// Open parses ref and opens it.
func Open(ctx context.Context, ref string, opts Options) (Source, error) {
	r, err := Parse(ref)
	if err != nil {
		return nil, err
	}
	return r.Open(ctx, opts)
}

// ErrReadOnly: a reference to a source that osimagefs only reads (an OCI
// image layout) given to a command that writes.
var ErrReadOnly = errors.New("an OCI image layout is read only")

// Writable checks that ref names a source osimagefs can write to: a
// registry. An oci: reference is refused with ErrReadOnly.
func Writable(ref string) error {
	if strings.HasPrefix(ref, LayoutPrefix) {
		return fmt.Errorf("%s: %w: push, index and profile push write to registries (push to one, then copy the image with its referrers into the layout: oras copy -r --to-oci-layout)", ref, ErrReadOnly)
	}
	return nil
}

// IsNotFound reports whether err says that what a reference names is not
// there: no such repository, tag, manifest or blob in a registry; no such
// directory, tag, manifest or blob in a layout.
func IsNotFound(err error) bool {
	return errors.Is(err, blobstore.ErrNotFound) || errors.Is(err, layout.ErrNotFound)
}

// IsBadInput reports whether err is about what the user gave: a CA file
// or a hosts configuration that cannot be used, a directory that is not a
// valid layout, a layout reference that is malformed or names no single
// image of one, a layout given to a command that writes.
func IsBadInput(err error) bool {
	for _, kind := range []error{blobstore.ErrCAFile, blobstore.ErrHostsConfig, layout.ErrInvalid, layout.ErrAmbiguous, layout.ErrBadReference, ErrReadOnly} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// registry is a registry's Store, with its referrers listings shared.
type registry struct {
	*blobstore.SharedReferrers
}

func (r registry) Info() Info {
	repo := r.Reference().Context()
	return Info{Name: repo.RegistryStr(), Registry: repo.RegistryStr(), Repository: repo.RepositoryStr()}
}

func (r registry) Close() error { return nil }

// layoutSource is an image of a layout.
type layoutSource struct {
	*layout.Layout
}

func (l layoutSource) Info() Info {
	name := LayoutPrefix + l.Dir()
	return Info{Name: name, Registry: name, Local: true}
}
