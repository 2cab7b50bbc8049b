package fat

import (
	"encoding/binary"
	"strings"
	"time"
	"unicode/utf16"

	"golang.org/x/text/encoding/charmap"
)

// Directory entry attribute bits.
const (
	attrReadOnly = 0x01
	attrVolume   = 0x08
	attrDir      = 0x10
	attrLFN      = 0x0f // read-only | hidden | system | volume: a long-name piece
)

// entry is what a short (8.3) directory entry says of one object.
type entry struct {
	name    string
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
}

func (e entry) dir() bool { return e.attr&attrDir != 0 }

// parseShort decodes the 32-byte short entry b; fat32 says whether the
// high half of the first cluster is meaningful.
func parseShort(b []byte, fat32 bool) entry {
	e := entry{
		attr:    b[11],
		cluster: uint32(binary.LittleEndian.Uint16(b[26:])),
		size:    binary.LittleEndian.Uint32(b[28:]),
		mtime:   dosTime(binary.LittleEndian.Uint16(b[24:]), binary.LittleEndian.Uint16(b[22:])),
	}
	if fat32 {
		e.cluster |= uint32(binary.LittleEndian.Uint16(b[20:])) << 16
	}
	return e
}

// dosTime turns a DOS date and time (local time, 2 s steps) into a time,
// taken as UTC as Linux's default tz does.
func dosTime(d, t uint16) time.Time {
	return time.Date(1980+int(d>>9), time.Month(max(d>>5&15, 1)), max(int(d&31), 1),
		int(t>>11), int(t>>5&63), int(t&31)*2, 0, time.UTC)
}

// shortName is the 8.3 name of b as Linux shows it by default
// (shortname=mixed): as stored, but with the base or the extension in
// lower case when the entry's case flags say so.
func shortName(b []byte) string {
	raw := [11]byte(b[:11])
	if raw[0] == 0x05 {
		raw[0] = 0xe5
	}
	dec := charmap.CodePage437.NewDecoder()
	base, _ := dec.String(strings.TrimRight(string(raw[:8]), " "))
	ext, _ := dec.String(strings.TrimRight(string(raw[8:]), " "))
	if b[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if b[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// checksum is the short-name checksum a long name's pieces carry.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b[:11] {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

// longName gathers the pieces of a VFAT long name, which come before their
// short entry, last piece first.
type longName struct {
	units [20 * 13]uint16
	want  int // the ordinal of the next piece expected; 0 when complete or none
	total int
	sum   byte
	ok    bool
}

// add takes the long-name piece b.
func (l *longName) add(b []byte) {
	ord := int(b[0] & 0x1f)
	if b[0]&0x40 != 0 {
		*l = longName{want: ord, total: ord, sum: b[13], ok: ord >= 1 && ord <= 20}
	}
	if !l.ok || ord != l.want || b[13] != l.sum {
		l.ok = false
		return
	}
	u := l.units[(ord-1)*13:]
	for i, o := range [13]int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
		u[i] = binary.LittleEndian.Uint16(b[o:])
	}
	l.want--
}

// name returns the long name for the short entry b, if a complete one
// with a matching checksum came before it, and resets l.
func (l *longName) name(b []byte) (string, bool) {
	defer func() { *l = longName{} }()
	if !l.ok || l.want != 0 || checksum(b) != l.sum {
		return "", false
	}
	u := l.units[:l.total*13]
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	if len(u) == 0 {
		return "", false
	}
	return string(utf16.Decode(u)), true
}
