package main

import (
	"errors"
	"testing"
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
