package image

import "strings"

// Manifest and index media types. Media types are compared case-insensitively
// (RFC 6838); these constants are in their canonical spelling.
const (
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeSeedArtifacts  = "application/vnd.OpenKCM.image.artifacts.v1+json"
	MediaTypeSeedConfig     = "application/vnd.OpenKCM.image.config.v1+json"
	MediaTypeIronCoreConfig = "application/vnd.ironcore.image.config.v1+json"
	// MediaTypeChunkTable is the type of a chunk table blob: the sha256 of
	// each piece of one layer (package integrity). Tables listed as layers
	// of a manifest are not shown in the tree.
	MediaTypeChunkTable = "application/vnd.osimagefs.chunktable.v1"
	// ArtifactTypeChunkTables is the artifactType of a manifest that
	// attaches chunk tables to an image manifest as an OCI referrer.
	ArtifactTypeChunkTables = "application/vnd.osimagefs.chunktables.v1"
	// AnnotationChunkTableOf, on a chunk table's descriptor, names the
	// digest of the layer it covers.
	AnnotationChunkTableOf  = "io.osimagefs.chunktable.of"
	annotationTitle         = "org.opencontainers.image.title"
	annotationVariant       = "variant"
	annotationArchitecture  = "architecture"
	annotationDockerRefType = "vnd.docker.reference.type"
	defaultVariant          = "default"
	unknownArchitecture     = "unknown"
)

// Role is what a layer is for. Its file name in the tree is Role.FileName().
type Role string

// The roles of section 2 of the design notes. RoleUnknown is a layer whose
// media type is not recognised; it is still shown, under a safe name.
const (
	RoleDisk      Role = "disk"
	RoleKernel    Role = "kernel"
	RoleInitramfs Role = "initramfs"
	RoleSquashfs  Role = "squashfs"
	RoleCmdline   Role = "cmdline"
	RoleUKI       Role = "uki"
	RoleISO       Role = "iso"
	RoleUnknown   Role = "unknown"

	// Roles of the files that are documents rather than layers.
	RoleIndex    Role = "index"
	RoleManifest Role = "manifest"
	RoleConfig   Role = "config"
)

// FileName is the name a layer of this role has in the tree ("" for
// RoleUnknown and the document roles, whose names come from elsewhere).
func (r Role) FileName() string {
	switch r {
	case RoleDisk:
		return "disk.img"
	case RoleKernel:
		return "kernel"
	case RoleInitramfs:
		return "initramfs"
	case RoleSquashfs:
		return "root.squashfs"
	case RoleCmdline:
		return "cmdline"
	case RoleUKI:
		return "uki.efi"
	case RoleISO:
		return "image.iso"
	case RoleIndex:
		return "index.json"
	case RoleManifest:
		return "manifest.json"
	case RoleConfig:
		return "config.json"
	}
	return ""
}

// vendors are the media-type vendor trees of the seed (OpenKCM) and of
// IronCore (current and the older onmetal name).
var vendors = [...]string{"application/vnd.openkcm.", "application/vnd.ironcore.", "application/vnd.onmetal."}

// vendorSuffixes maps what follows the vendor prefix to a role. It covers the
// seed's and IronCore's current types and the v1alpha1 legacy types.
var vendorSuffixes = map[string]Role{
	"image.disk.img":                     RoleDisk,
	"image.rootfs":                       RoleDisk,
	"image.rootfs.v1alpha1.rootfs":       RoleDisk,
	"image.kernel":                       RoleKernel,
	"image.vmlinuz.v1alpha1.vmlinuz":     RoleKernel,
	"image.initramfs":                    RoleInitramfs,
	"image.initramfs.v1alpha1.initramfs": RoleInitramfs,
	"image.squashfs":                     RoleSquashfs,
	"image.squashfs.v1alpha1.squashfs":   RoleSquashfs,
	"image.cmdline":                      RoleCmdline,
	"image.uki":                          RoleUKI,
	"image.iso":                          RoleISO,
}

// gardenLinux maps Garden Linux's layer types to roles.
var gardenLinux = map[string]Role{
	"application/io.gardenlinux.kernel":   RoleKernel,
	"application/io.gardenlinux.initrd":   RoleInitramfs,
	"application/io.gardenlinux.squashfs": RoleSquashfs,
}

// RoleOf classifies a layer media type. Unrecognised types are RoleUnknown.
func RoleOf(mediaType string) Role {
	mt := normalize(mediaType)
	if r, ok := gardenLinux[mt]; ok {
		return r
	}
	for _, v := range vendors {
		if rest, ok := strings.CutPrefix(mt, v); ok {
			if r, ok := vendorSuffixes[rest]; ok {
				return r
			}
		}
	}
	return RoleUnknown
}

// IsOSConfig reports whether mediaType is the config type of an OS image
// (OpenKCM, IronCore or onmetal; v1 or v1alpha1).
func IsOSConfig(mediaType string) bool {
	mt := normalize(mediaType)
	for _, v := range vendors {
		if rest, ok := strings.CutPrefix(mt, v); ok {
			return rest == "image.config.v1+json" || rest == "image.config.v1alpha1+json"
		}
	}
	return false
}

// IsChunkTable reports whether mediaType is a chunk table's.
func IsChunkTable(mediaType string) bool {
	return normalize(mediaType) == MediaTypeChunkTable
}

// IsIndex reports whether mediaType is an OCI index or a Docker manifest list.
func IsIndex(mediaType string) bool {
	mt := normalize(mediaType)
	return mt == normalize(MediaTypeOCIIndex) || mt == normalize(MediaTypeDockerList)
}

// IsOSArtifactType reports whether an artifactType names an OS image.
func IsOSArtifactType(mediaType string) bool {
	return normalize(mediaType) == normalize(MediaTypeSeedArtifacts)
}

// normalize lower-cases a media type and drops parameters ("; charset=...").
func normalize(mediaType string) string {
	mt, _, _ := strings.Cut(mediaType, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
