package image

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

func TestSafeName(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{"plain", "disk.img", true},
		{"no extension", "kernel", true},
		{"hidden file", ".config", true},
		{"three dots", "...", true},
		{"dot inside", "a..b", true},
		{"space", "my disk.img", true},
		{"unicode", "größe-数据.img", true},
		{"replacement char literal", "a\uFFFDb", true},
		{"255 bytes", strings.Repeat("a", 255), true},
		{"255 bytes multibyte", strings.Repeat("é", 127) + "a", true},
		{"dash", "-", true},
		{"tilde", "~", true},

		{"empty", "", false},
		{"dot", ".", false},
		{"dotdot", "..", false},
		{"256 bytes", strings.Repeat("a", 256), false},
		{"300 bytes", strings.Repeat("x", 300), false},
		{"256 bytes multibyte", strings.Repeat("é", 128), false},
		{"slash", "a/b", false},
		{"leading slash", "/etc", false},
		{"parent path", "../etc", false},
		{"trailing slash", "a/", false},
		{"backslash", `a\b`, false},
		{"NUL", "x\x00y", false},
		{"only NUL", "\x00", false},
		{"escape sequence", "\x1b[31m", false},
		{"newline", "a\nb", false},
		{"carriage return", "a\rb", false},
		{"tab", "a\tb", false},
		{"DEL", "a\x7fb", false},
		{"C1 control", "a\u0085b", false},
		{"invalid UTF-8", "a\xffb", false},
		{"truncated UTF-8", "\xc3", false},
	}
	// Every rune that is not unicode.IsPrint, whether control, format
	// (Cf) or a space other than U+0020, is refused: the mount would show
	// it raw while inspect escapes it.
	for _, r := range unprintableRunes {
		tests = append(tests, struct {
			name string
			s    string
			want bool
		}{fmt.Sprintf("%U %s", r.r, r.name), "gpj" + string(r.r) + ".exe", false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SafeName(tt.s); got != tt.want {
				t.Errorf("SafeName(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

// unprintableRunes are runes a tree name must not hold: format characters
// (Cf) that reorder or hide text, spaces other than U+0020, separators,
// private-use and unassigned runes.
var unprintableRunes = []struct {
	name string
	r    rune
}{
	{"soft hyphen", '\u00ad'},
	{"arabic letter mark", '\u061c'},
	{"zero-width space", '\u200b'},
	{"zero-width non-joiner", '\u200c'},
	{"zero-width joiner", '\u200d'},
	{"left-to-right mark", '\u200e'},
	{"right-to-left mark", '\u200f'},
	{"left-to-right embedding", '\u202a'},
	{"right-to-left embedding", '\u202b'},
	{"pop directional formatting", '\u202c'},
	{"left-to-right override", '\u202d'},
	{"right-to-left override", '\u202e'},
	{"word joiner", '\u2060'},
	{"left-to-right isolate", '\u2066'},
	{"right-to-left isolate", '\u2067'},
	{"first strong isolate", '\u2068'},
	{"pop directional isolate", '\u2069'},
	{"byte order mark", '\ufeff'},
	{"interlinear annotation anchor", '\ufff9'},
	{"tag space", '\U000e0020'},
	{"no-break space", '\u00a0'},
	{"em space", '\u2003'},
	{"ideographic space", '\u3000'},
	{"line separator", '\u2028'},
	{"paragraph separator", '\u2029'},
	{"private use", '\ue000'},
	{"unassigned", '\U000effff'},
	{"C1 control", '\u009b'},
}

func TestUnknownLayerName(t *testing.T) {
	d := digest.FromString("some layer")
	fallback := "layer-" + d.Encoded()[:12]
	tests := []struct {
		name  string
		title string
		want  string
	}{
		{"safe title", "firmware.bin", "firmware.bin"},
		{"empty", "", fallback},
		{"parent", "../etc", fallback},
		{"slash", "a/b", fallback},
		{"NUL", "x\x00y", fallback},
		{"escape", "\x1b[31m", fallback},
		{"dot", ".", fallback},
		{"dotdot", "..", fallback},
		{"300 chars", strings.Repeat("t", 300), fallback},
		{"invalid UTF-8", "\xff", fallback},
		{"combining mark", "cafe\u0301.bin", "cafe\u0301.bin"},
	}
	for _, r := range unprintableRunes {
		tests = append(tests, struct {
			name  string
			title string
			want  string
		}{fmt.Sprintf("%U %s", r.r, r.name), "firm" + string(r.r) + "ware.bin", fallback})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unknownLayerName(tt.title, d)
			if got != tt.want {
				t.Errorf("unknownLayerName(%q) = %q, want %q", tt.title, got, tt.want)
			}
			if !SafeName(got) {
				t.Errorf("unknownLayerName(%q) = %q is not a SafeName", tt.title, got)
			}
		})
	}
}

func TestSafeElement(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "amd64", "amd64"},
		{"empty", "", "fb"},
		{"dot", ".", "fb"},
		{"dotdot", "..", "fb"},
		{"slash", "a/b", "a_b"},
		{"parent path", "../etc", ".._etc"},
		{"backslash", `a\b`, "a_b"},
		{"NUL", "x\x00y", "x_y"},
		{"escape", "\x1b[31m", "_[31m"},
		{"invalid UTF-8", "a\xffb", "a_b"},
		{"only slash", "/", "_"},
		{"right-to-left override", "amd64\u202e", "amd64_"},
		{"zero-width space", "arm\u200b64", "arm_64"},
		{"no-break space", "v\u00a08", "v_8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := safeElement(tt.in, "fb")
			if got != tt.want {
				t.Errorf("safeElement(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !SafeName(got) {
				t.Errorf("safeElement(%q) = %q is not a SafeName", tt.in, got)
			}
		})
	}
	t.Run("long multibyte is cut on a rune boundary with room for a suffix", func(t *testing.T) {
		got := safeElement(long, "fb")
		if !utf8.ValidString(got) || len(got) > maxNameLen-8 || !strings.HasPrefix(long, got) || got == "" {
			t.Errorf("safeElement(400 bytes) = %q (%d bytes)", got, len(got))
		}
		if !SafeName(got + "-9999") {
			t.Errorf("%q with a suffix is not a SafeName", got)
		}
	})
}

func TestNameSetClaim(t *testing.T) {
	long := strings.Repeat("a", 255)
	longExt := "a." + strings.Repeat("e", 253)
	longMulti := strings.Repeat("é", 127) + "a" // 255 bytes
	tests := []struct {
		name   string
		claims []string
		want   []string
	}{
		{"distinct", []string{"kernel", "initramfs"}, []string{"kernel", "initramfs"}},
		{"no extension", []string{"kernel", "kernel", "kernel"}, []string{"kernel", "kernel-2", "kernel-3"}},
		{"extension", []string{"disk.img", "disk.img", "disk.img"}, []string{"disk.img", "disk-2.img", "disk-3.img"}},
		{"double extension keeps last", []string{"root.squashfs", "root.squashfs"}, []string{"root.squashfs", "root-2.squashfs"}},
		{"hidden file", []string{".cfg", ".cfg"}, []string{".cfg", ".cfg-2"}},
		{"suffix already taken", []string{"disk-2.img", "disk.img", "disk.img"}, []string{"disk-2.img", "disk.img", "disk-3.img"}},
		{"255-byte names stay within 255 bytes", []string{long, long, long}, []string{long, strings.Repeat("a", 253) + "-2", strings.Repeat("a", 253) + "-3"}},
		{"255-byte name with a long extension", []string{longExt, longExt}, []string{longExt, "a." + strings.Repeat("e", 251) + "-2"}},
		{"long stem with extension", []string{strings.Repeat("s", 251) + ".img", strings.Repeat("s", 251) + ".img"}, []string{strings.Repeat("s", 251) + ".img", strings.Repeat("s", 249) + "-2.img"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := nameSet{}
			for i, c := range tt.claims {
				got := s.claim(c)
				if got != tt.want[i] {
					t.Errorf("claim %d (%q) = %q, want %q", i, c, got, tt.want[i])
				}
				if !SafeName(got) {
					t.Errorf("claim %d (%q) = %q (%d bytes) is not a SafeName", i, c, got, len(got))
				}
			}
		})
	}
	t.Run("255-byte multibyte names are cut on a rune boundary", func(t *testing.T) {
		s := nameSet{}
		seen := map[string]bool{}
		for i := 0; i < 12; i++ {
			got := s.claim(longMulti)
			if !SafeName(got) || seen[got] {
				t.Fatalf("claim %d = %q (%d bytes): not safe or not unique", i, got, len(got))
			}
			seen[got] = true
		}
	})
}
