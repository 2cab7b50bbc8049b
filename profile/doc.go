// Package profile is the boot profile format: the byte ranges of layer
// blobs that a boot read, in the order it first read them, so that a
// later mount of the same image can fetch them ahead of the boot.
//
// A profile is a JSON array of entries, media type MediaType:
//
//	[
//	  {"digest": "sha256:5f1c…", "off": 0, "len": 131072, "at_ms": 3},
//	  {"digest": "sha256:c3d2…", "off": 1048576, "len": 65536, "at_ms": 41}
//	]
//
// digest names a layer of the image, off and len a byte range of it (len
// > 0, off+len within the layer), at_ms the time of its first read in
// milliseconds since the mount was ready. Entries are in first-read
// order; a range is never recorded twice, and neighbouring ranges of one
// blob are merged. Offsets are bytes, never chunk indexes, so a profile
// does not depend on the chunk size of the mount that recorded it.
//
// A profile is published as an OCI referrer of the image manifest
// (artifactType ArtifactType, one layer of MediaType). Parse reads one
// with bounds (MaxSize, MaxEntries); Check holds it against the image's
// layers. Recorder builds one from the reads of a mount, WriteFile stores
// it atomically.
package profile

// Media types of a boot profile.
const (
	// MediaType is the type of a profile document (the referrer's layer).
	MediaType = "application/vnd.osimagefs.bootprofile.v1+json"
	// ArtifactType is the artifactType of the referrer manifest that
	// attaches a profile to an image manifest.
	ArtifactType = "application/vnd.osimagefs.bootprofile.v1"
)
