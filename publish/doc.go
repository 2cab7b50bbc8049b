// Package publish builds an OS image in the format osimagefs mounts and
// pushes it to an OCI registry: the files of one platform (disk image,
// kernel, initramfs, squashfs, UKI, ISO and a kernel command line) become
// the layers of one manifest, and the manifest becomes an entry of the OCI
// index that the tag points to.
//
// It owns the writing side of section 2 of the design notes:
//
//   - the manifest: a standard OCI image manifest with
//     artifactType application/vnd.OpenKCM.image.artifacts.v1+json, the
//     OpenKCM config and layer types, a cmdline layer, and the annotations
//     variant, architecture and org.opencontainers.image.title
//     (FormatOpenKCM); or IronCore's current types, the command line only in
//     the config and no mediaType field (FormatIronCore);
//   - the chunk tables: every file larger than one piece gets a table
//     (package integrity), built by the same read that hashes the file,
//     listed after the real layers with its own media type and no title,
//     so consumers that pick layers by type see the image they always did
//     (Options.NoChunkTables leaves them out);
//   - the index: always an OCI image index; with Options.AddToIndex the
//     index already at the tag is merged, so pushing once per architecture
//     builds a multi-platform image;
//   - the upload: blobs are hashed and sent by streaming the files (never
//     read whole into memory), and skipped when the registry already has
//     them.
//
// AttachTables (the index command) is the other writing side: chunk tables
// for an image pushed by any tool, each layer streamed once and checked
// against its digest, published as one OCI referrer per manifest
// (referrer.go) through the referrers API or its fallback tag.
//
// Push is the entry point of the first. Errors about the options themselves (an unknown
// architecture, a missing file, no file at all) are reported with
// IsUsage; registry errors wrap the sentinels of package blobstore
// (ErrNotFound, ErrUnauthorized, ErrUnreachable) and say what was being
// done. The library draws nothing: progress goes to an optional Progress,
// log lines to an optional *slog.Logger.
package publish
