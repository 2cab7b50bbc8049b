// Package integrity owns what a byte must match before a reader gets it:
// chunk tables (the sha256 of each fixed-size piece of a layer, table.go),
// how they are built while a blob streams by (build.go), how they are
// found for an image (find.go), and the policy of a mount: which blob is
// checked by pieces, which whole, which not at all (verifier.go). A whole
// blob is hashed by CheckBlob (blob.go).
//
// The lazy package asks a Verifier before a fetched or cached piece lands
// anywhere; the cache package stores bytes by key and knows nothing of
// digests.
package integrity
