// Package layout reads OCI image layouts: the directories that oras push
// --oci-layout, skopeo copy ... oci: and crane write (an oci-layout file,
// index.json, and content-addressed files under blobs/<alg>/<hex>). A
// Layout is a source of the same documents and byte ranges as a registry
// (blobstore.Store): the image's tree is resolved from its documents by
// image.Resolve, byte ranges are preads on the blob files, and referrers
// (chunk tables, boot profiles) are the manifests the layout holds with a
// subject.
//
// Every file is opened beneath the layout directory (os.Root): a blob path
// that would leave it, by a symbolic link or otherwise, is refused, and so
// is a blob that is not a regular file. Errors name the file they are
// about. Nothing here checks a blob against its digest: image.Resolve does
// for documents, and the lazy and integrity packages do for layers, as
// they do for a registry.
//
// A reference to a layout is DIR, DIR:TAG or DIR@DIGEST (ref.go); a TAG is
// the org.opencontainers.image.ref.name annotation of an index.json entry.
package layout
