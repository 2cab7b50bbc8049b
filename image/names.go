package image

import (
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
)

// maxNameLen is the longest file name most Linux file systems accept.
const maxNameLen = 255

// PrintableRune is the one rule for which runes are shown as themselves:
// a tree name holds only these, and inspect escapes every other rune, so the
// mount and inspect never disagree. It is unicode.IsPrint: letters, marks,
// numbers, punctuation, symbols and the ASCII space. That refuses control
// characters, format characters (bidi overrides and isolates, zero-width
// spaces and joiners, U+FEFF), every other space and separator, and
// private-use and unassigned runes: what could make one name look like
// another, or hide part of it.
func PrintableRune(r rune) bool { return unicode.IsPrint(r) }

// nameRune reports whether r may appear in a tree name: a PrintableRune
// that is not a path separator ('/', or '\\' for whoever copies the name
// to Windows).
func nameRune(r rune) bool { return r != '/' && r != '\\' && PrintableRune(r) }

// SafeName reports whether s can be used as one path element of the tree:
// valid UTF-8, not empty, not "." or "..", at most 255 bytes, and only
// runes that are PrintableRune and not '/' or '\\'.
func SafeName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !nameRune(r) {
			return false
		}
	}
	return true
}

// unknownLayerName is the name of a layer with no known role: its title when
// that is safe, else "layer-" and the first 12 hex digits of its digest.
func unknownLayerName(title string, d digest.Digest) string {
	if SafeName(title) {
		return title
	}
	hex := d.Encoded()
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return "layer-" + hex
}

// safeElement turns a platform or annotation value into one safe path
// element, replacing each rune that nameRune refuses (and invalid UTF-8)
// with '_'; fallback is used when nothing is left.
func safeElement(s, fallback string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || !nameRune(r) {
			b.WriteRune('_')
			continue
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > maxNameLen-8 { // leave room for a collision suffix
		out = out[:maxNameLen-8]
		for !utf8.ValidString(out) {
			out = out[:len(out)-1]
		}
	}
	if out == "" || out == "." || out == ".." {
		return fallback
	}
	return out
}

// nameSet hands out unique names within one directory. A name that is
// taken maps to the next suffix to try when it is claimed again (>= 2); a
// name not in the set (0) is free. Remembering where the last search ended
// keeps n claims of one name linear: a manifest of MaxLayers layers of one
// role must not cost MaxLayers² look-ups.
type nameSet map[string]int

// has reports whether name is taken.
func (s nameSet) has(name string) bool { return s[name] > 0 }

// take marks name as taken.
func (s nameSet) take(name string) {
	if s[name] == 0 {
		s[name] = 2
	}
}

// claim returns name, or name with "-2", "-3", ... inserted before its
// extension if name is already taken, and marks the result as taken.
func (s nameSet) claim(name string) string {
	if !s.has(name) {
		s.take(name)
		return name
	}
	ext := path.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	if stem == "" { // ".hidden": treat the whole name as the stem
		stem, ext = name, ""
	}
	// Suffixes below s[name] were handed out for name before or were
	// taken then; names are never released, so the search resumes there.
	for i := s[name]; ; i++ {
		suffix := "-" + strconv.Itoa(i)
		cand := stem + suffix + ext
		if len(cand) > maxNameLen { // keep the result a SafeName: shorten the stem
			if budget := maxNameLen - len(suffix) - len(ext); budget > 0 {
				cand = truncateUTF8(stem, budget) + suffix + ext
			} else { // the extension alone is too long: cut the whole name
				cand = truncateUTF8(name, maxNameLen-len(suffix)) + suffix
			}
		}
		if !s.has(cand) {
			s[name] = i + 1
			s.take(cand)
			return cand
		}
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
