package publish

import (
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/image"
)

func TestCheckArchitecture(t *testing.T) {
	tests := []struct{ arch, wantErr string }{
		{"amd64", ""}, {"arm64", ""}, {"riscv64", ""}, {"s390x", ""},
		{"x86_64", "did you mean amd64"}, {"aarch64", "did you mean arm64"},
		{"AMD64", "did you mean amd64"}, {"", "required"}, {"sparc", "unknown architecture"},
	}
	for _, tc := range tests {
		t.Run(tc.arch, func(t *testing.T) {
			err := checkArchitecture(tc.arch)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--arch") {
				t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

func TestFormatMediaTypes(t *testing.T) {
	// Every layer type written must be recognised by the reading side with
	// the same role.
	for _, f := range []Format{FormatOpenKCM, FormatIronCore} {
		for _, r := range []image.Role{image.RoleDisk, image.RoleKernel, image.RoleInitramfs, image.RoleSquashfs, image.RoleCmdline, image.RoleUKI, image.RoleISO} {
			mt := f.LayerMediaType(r)
			if mt == "" {
				if f == FormatIronCore && r == image.RoleCmdline {
					continue
				}
				t.Errorf("%s %s: no media type", f, r)
				continue
			}
			if got := image.RoleOf(mt); got != r {
				t.Errorf("%s %s: %q reads back as %s", f, r, mt, got)
			}
		}
		if !image.IsOSConfig(f.ConfigMediaType()) {
			t.Errorf("%s config type %q is not an OS config", f, f.ConfigMediaType())
		}
	}
	if _, err := ParseFormat("IronCore"); err != nil {
		t.Error(err)
	}
	if _, err := ParseFormat("oras"); err == nil || !IsUsage(err) {
		t.Errorf("ParseFormat(oras) = %v", err)
	}
}
