package image

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr bool
	}{
		{in: "linux/amd64", want: Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm64", want: Platform{OS: "linux", Architecture: "arm64"}},
		{in: "linux/arm64/v8", want: Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{in: "", wantErr: true},
		{in: "linux", wantErr: true},
		{in: "amd64", wantErr: true},
		{in: "/", wantErr: true},
		{in: "/amd64", wantErr: true},
		{in: "linux/", wantErr: true},
		{in: "linux//v8", wantErr: true},
		{in: "linux/arm64/", wantErr: true},
		{in: "linux/arm64/v8/extra", wantErr: true},
		{in: "//", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePlatform(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePlatform(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePlatform(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParsePlatform(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestPlatformMatches(t *testing.T) {
	tests := []struct {
		name string
		p    Platform
		e    ocispec.Platform
		want bool
	}{
		{"same", Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "amd64"}, true},
		{"case-insensitive", Platform{OS: "Linux", Architecture: "AMD64"}, ocispec.Platform{OS: "linux", Architecture: "amd64"}, true},
		{"other arch", Platform{OS: "linux", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "arm64"}, false},
		{"other os", Platform{OS: "windows", Architecture: "amd64"}, ocispec.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"entry without os matches on arch", Platform{OS: "linux", Architecture: "arm64"}, ocispec.Platform{Architecture: "arm64"}, true},
		{"entry without anything", Platform{OS: "linux", Architecture: "arm64"}, ocispec.Platform{}, false},
		{"variant wanted and equal", Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
		{"variant wanted and different", Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v7"}, false},
		{"variant not wanted", Platform{OS: "linux", Architecture: "arm64"}, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.matches(tt.e); got != tt.want {
				t.Errorf("%v.matches(%+v) = %v, want %v", tt.p, tt.e, got, tt.want)
			}
		})
	}
}
