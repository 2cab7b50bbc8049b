package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/image"
)

func TestParsePrefetch(t *testing.T) {
	boot := map[image.Role]bool{image.RoleKernel: true, image.RoleInitramfs: true, image.RoleCmdline: true}
	for _, tc := range []struct {
		in    string
		roles map[image.Role]bool
		all   bool
	}{
		{"none", map[image.Role]bool{}, false},
		{"small", boot, false},
		{"all", boot, true},
		{"small+uki", map[image.Role]bool{image.RoleKernel: true, image.RoleInitramfs: true, image.RoleCmdline: true, image.RoleUKI: true}, false},
		{"kernel+disk", map[image.Role]bool{image.RoleKernel: true, image.RoleDisk: true}, false},
	} {
		p, err := parsePrefetch(tc.in)
		if err != nil || !reflect.DeepEqual(p.roles, tc.roles) || p.all != tc.all {
			t.Errorf("parsePrefetch(%q) = %v, %v, %v; want %v, all %v", tc.in, p.roles, p.all, err, tc.roles, tc.all)
		}
	}
	for _, bad := range []string{"", "some", "small,uki", "small+", "none+kernel"} {
		_, err := parsePrefetch(bad)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--prefetch") {
			t.Errorf("parsePrefetch(%q) = %v, want a usage error naming --prefetch", bad, err)
		}
	}
}
