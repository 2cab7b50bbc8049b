package image

import (
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform selects index entries: "os/arch[/variant]". An empty field
// matches anything.
type Platform struct {
	OS, Architecture, Variant string
}

// ParsePlatform parses "os/arch" or "os/arch/variant" (e.g. linux/arm64/v8).
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant, e.g. linux/amd64", s)
	}
	for _, p := range parts {
		if p == "" {
			return Platform{}, fmt.Errorf("platform %q: empty element; want os/arch or os/arch/variant", s)
		}
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches reports whether the platform of an index entry is selected by p.
// An entry without an OS (a single manifest) matches on architecture only.
func (p Platform) matches(e ocispec.Platform) bool {
	if e.OS != "" && !strings.EqualFold(p.OS, e.OS) {
		return false
	}
	if !strings.EqualFold(p.Architecture, e.Architecture) {
		return false
	}
	return p.Variant == "" || strings.EqualFold(p.Variant, e.Variant)
}

func anyMatch(ps []Platform, e ocispec.Platform) bool {
	for _, p := range ps {
		if p.matches(e) {
			return true
		}
	}
	return false
}

func platformOrEmpty(p *ocispec.Platform) ocispec.Platform {
	if p == nil {
		return ocispec.Platform{}
	}
	return *p
}
