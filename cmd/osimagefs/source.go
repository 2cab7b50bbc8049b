package main

import (
	"context"
	"log/slog"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/source"
)

// referenceHelp says what a REFERENCE is, in the help of every command
// that reads an image.
const referenceHelp = `REFERENCE is an image in a registry (registry.example.com/os/debian:13,
or ...@sha256:<hex>) or in an OCI image layout directory, as oras push
--oci-layout, skopeo copy ... oci: and crane write them: oci:DIR (its only
image, or the one tagged latest), oci:DIR:TAG (the index.json entry whose
org.opencontainers.image.ref.name is TAG) or oci:DIR@sha256:<hex>. DIR and
TAG may contain ':': DIR is the longest part that is an existing
directory. A layout's blob files are read in place (no HTTP), each hashed
against its digest before any of it is served (a layer with a chunk table
is checked piece by piece instead), and no disk cache is used unless
--cache-dir is given.`

// openSource opens the image ref names: source.Open, the one place that
// tells a registry from a layout; reg is for a registry.
func openSource(ctx context.Context, ref source.Ref, reg blobstore.Options, log *slog.Logger) (source.Source, error) {
	return ref.Open(ctx, source.Options{Registry: reg, Logger: log})
}

// cacheDirFor is the --cache-dir of a command that reads ref: as given,
// else none for a source whose blobs are files on this host (a disk cache
// would only copy them), else "" (the default directory).
func cacheDirFor(flag string, ref source.Ref) string {
	if flag == "" && ref.Local() {
		return "none"
	}
	return flag
}
