// Package source is the one place that tells the sources of an image
// apart: a reference that starts with oci: names an OCI image layout
// directory (package layout), any other a registry (package blobstore).
// Both are a Source: the image's documents, the referrers of its
// manifests, and byte ranges of its blobs, which is all that lazy,
// integrity, profile and the commands read. Nothing above this package
// knows which source it reads; what differs between them that a caller
// must act on is a property (Info.Local), not a kind.
package source
