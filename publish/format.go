package publish

import (
	"strings"

	"github.com/osimagefs/osimagefs/image"
)

// Format selects the media types written. The zero value is FormatOpenKCM.
type Format string

const (
	// FormatOpenKCM writes the seed's types (application/vnd.OpenKCM.image.*)
	// in a standard OCI manifest with the OpenKCM artifactType, and the
	// command line both in the config and as a cmdline layer.
	FormatOpenKCM Format = "openkcm"
	// FormatIronCore writes IronCore's current types
	// (application/vnd.ironcore.image.*, the disk as ...rootfs), the command
	// line only in the config, no artifactType and no mediaType field in the
	// manifest JSON, as IronCore's own tooling does.
	FormatIronCore Format = "ironcore"
)

// ParseFormat accepts "openkcm" (or "") and "ironcore", in any case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", string(FormatOpenKCM):
		return FormatOpenKCM, nil
	case string(FormatIronCore):
		return FormatIronCore, nil
	}
	return "", &OptionError{Option: "format", Value: s, Reason: "want openkcm or ironcore"}
}

func (f Format) orDefault() Format {
	if f == "" {
		return FormatOpenKCM
	}
	return f
}

// LayerMediaType is the media type this format gives a layer of role r
// ("" for roles that are not layers, and for RoleCmdline in FormatIronCore).
func (f Format) LayerMediaType(r image.Role) string {
	vendor := "application/vnd.OpenKCM.image."
	if f.orDefault() == FormatIronCore {
		vendor = "application/vnd.ironcore.image."
		switch r {
		case image.RoleDisk:
			return vendor + "rootfs"
		case image.RoleCmdline:
			return ""
		}
	}
	switch r {
	case image.RoleDisk:
		return vendor + "disk.img"
	case image.RoleKernel, image.RoleInitramfs, image.RoleSquashfs, image.RoleCmdline, image.RoleUKI, image.RoleISO:
		return vendor + string(r)
	}
	return ""
}

// ConfigMediaType is the media type of the config blob.
func (f Format) ConfigMediaType() string {
	if f.orDefault() == FormatIronCore {
		return image.MediaTypeIronCoreConfig
	}
	return image.MediaTypeSeedConfig
}

// artifactType is the manifest's artifactType ("" for none).
func (f Format) artifactType() string {
	if f.orDefault() == FormatIronCore {
		return ""
	}
	return image.MediaTypeSeedArtifacts
}

// manifestMediaTypeField is the manifest's mediaType field ("" to omit it).
func (f Format) manifestMediaTypeField() string {
	if f.orDefault() == FormatIronCore {
		return ""
	}
	return image.MediaTypeOCIManifest
}

// cmdlineLayer reports whether the command line is also pushed as a layer.
func (f Format) cmdlineLayer() bool { return f.orDefault() != FormatIronCore }

func (f Format) validate() error {
	switch f.orDefault() {
	case FormatOpenKCM, FormatIronCore:
		return nil
	}
	return &OptionError{Option: "format", Value: string(f), Reason: "want openkcm or ironcore"}
}
