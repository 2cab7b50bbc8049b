package iso9660

import (
	"encoding/binary"
	"strings"
	"time"
	"unicode/utf16"
)

// Directory record flag bits.
const (
	flagHidden     = 0x01
	flagDir        = 0x02
	flagAssociated = 0x04
	flagMulti      = 0x80 // more extents of this file follow
)

// record is what one directory record says, Rock Ridge included.
type record struct {
	extent uint32 // logical block of the data
	length uint32
	flags  byte
	name   []byte // as stored: ISO d-characters or Joliet UCS-2
	date   time.Time
	su     []byte // system use area
	unit   byte   // interleaved files: unsupported
}

// parseRecord decodes the record at the start of b, returning its length,
// or 0 when b holds no complete record.
func parseRecord(b []byte) (record, int) {
	if len(b) < 34 || int(b[0]) < 34 || int(b[0]) > len(b) {
		return record{}, 0
	}
	n := int(b[0])
	nameLen := int(b[32])
	if 33+nameLen > n {
		return record{}, 0
	}
	r := record{
		extent: binary.LittleEndian.Uint32(b[2:]),
		length: binary.LittleEndian.Uint32(b[10:]),
		flags:  b[25],
		unit:   b[26],
		name:   b[33 : 33+nameLen],
		date:   shortTime(b[18:25]),
	}
	su := 33 + nameLen
	if nameLen%2 == 0 {
		su++
	}
	if su < n {
		r.su = b[su:n]
	}
	return r, n
}

// dot reports whether the record is "." or "..".
func (r record) dot() bool { return len(r.name) == 1 && r.name[0] <= 1 }

// shortTime decodes a 7-byte recording date: years since 1900, month,
// day, hour, minute, second, and the offset from GMT in 15-minute units.
func shortTime(b []byte) time.Time {
	if len(b) < 7 || b[1] == 0 {
		return time.Unix(0, 0).UTC()
	}
	t := time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, time.UTC)
	return t.Add(-time.Duration(int8(b[6])) * 15 * time.Minute)
}

// longTime decodes a 17-byte date: 16 ASCII digits and the GMT offset.
func longTime(b []byte) time.Time {
	if len(b) < 17 {
		return time.Unix(0, 0).UTC()
	}
	num := func(s []byte) int {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y := num(b[0:4])
	if y == 0 {
		return time.Unix(0, 0).UTC()
	}
	t := time.Date(y, time.Month(num(b[4:6])), num(b[6:8]), num(b[8:10]), num(b[10:12]), num(b[12:14]), num(b[14:16])*10_000_000, time.UTC)
	return t.Add(-time.Duration(int8(b[16])) * 15 * time.Minute)
}

// isoName maps a plain ISO 9660 name as Linux's map=normal does: without
// the ";1" version and a trailing ".", in lower case.
func isoName(b []byte) string {
	s := string(b)
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, ".")
	return strings.ToLower(s)
}

// jolietName decodes a Joliet name (UCS-2 big-endian) without its version.
func jolietName(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	s := string(utf16.Decode(u))
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return s
}
