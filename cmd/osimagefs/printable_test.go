package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/image"
)

func TestOneLineEscapesControlCharacters(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines", "two lines"},
		{"\x1b[2J\x1b[31mgone\a", `\u001b[2J\u001b[31mgone\u0007`},
		{"bidi \u202egpj.exe", `bidi \u202egpj.exe`},
	}
	for _, tc := range tests {
		if got := oneLine(errors.New(tc.in)); got != tc.want {
			t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPrintableAgreesWithTreeNames: inspect prints every tree name exactly
// as the mount shows it, and a title that inspect would escape never
// becomes a tree name.
func TestPrintableAgreesWithTreeNames(t *testing.T) {
	tests := []struct {
		name  string
		title string
		safe  bool
	}{
		{"plain", "firmware.bin", true},
		{"unicode", "größe-数据.img", true},
		{"combining mark", "cafe\u0301", true},
		{"ASCII space", "my disk.img", true},
		{"right-to-left override", "\u202egpj.exe", false},
		{"zero-width space", "kernel\u200b", false},
		{"zero-width joiner", "a\u200db", false},
		{"byte order mark", "\ufeffx", false},
		{"bidi isolate", "\u2066x\u2069", false},
		{"no-break space", "a\u00a0b", false},
		{"escape", "\x1b[31m", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := image.SafeName(tt.title); got != tt.safe {
				t.Errorf("SafeName(%q) = %v, want %v", tt.title, got, tt.safe)
			}
			if same := printable(tt.title) == tt.title; same != tt.safe {
				t.Errorf("printable(%q) = %q: unchanged %v, want %v", tt.title, printable(tt.title), same, tt.safe)
			}
		})
	}
}

// FuzzPrintableAgreesWithSafeName: whatever the string, a SafeName prints
// unchanged, and a string that prints unchanged is refused as a name only
// for its shape (length, "." or "..", a separator), never for a rune that
// inspect would show differently.
func FuzzPrintableAgreesWithSafeName(f *testing.F) {
	for _, s := range []string{"kernel", "\u202egpj.exe", "a\u200bb", "\ufeff", "\x1b[31m", "a/b", "..", "cafe\u0301", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		unchanged := printable(s) == s
		if image.SafeName(s) && !unchanged {
			t.Fatalf("SafeName(%q) but inspect prints %q", s, printable(s))
		}
		shapeOK := s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsAny(s, `/\`)
		if unchanged && shapeOK && !image.SafeName(s) {
			t.Fatalf("%q prints unchanged but is not a SafeName", s)
		}
	})
}
