package cpio

import (
	"errors"
	"fmt"
)

// headerLen is the size of a newc header: a 6-byte magic and 13 fields of
// 8 ASCII hex digits.
const headerLen = 110

// pathMax is the longest name the kernel accepts (PATH_MAX, with its NUL).
const pathMax = 4096

// header is one newc ("070701") or crc ("070702") member header. We parse
// it ourselves rather than with a cpio library: it is 110 bytes of hex, and
// the scan needs the position of every member's data in the stream, which
// a library's io.Reader interface hides.
type header struct {
	ino, mode, uid, gid, nlink, mtime, filesize uint32
	devMajor, devMinor, rdevMajor, rdevMinor    uint32
	namesize, check                             uint32
}

var errMagic = errors.New("no cpio magic (newc 070701 or crc 070702)")

// parseHeader parses b, which holds headerLen bytes.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < headerLen {
		return h, errors.New("short header")
	}
	if string(b[:5]) != "07070" || (b[5] != '1' && b[5] != '2') {
		if string(b[:6]) == "070707" {
			return h, errors.New("old binary/odc cpio, not newc")
		}
		return h, errMagic
	}
	fields := [...]*uint32{&h.ino, &h.mode, &h.uid, &h.gid, &h.nlink, &h.mtime, &h.filesize,
		&h.devMajor, &h.devMinor, &h.rdevMajor, &h.rdevMinor, &h.namesize, &h.check}
	for i, f := range fields {
		v, err := hex8(b[6+8*i : 14+8*i])
		if err != nil {
			return h, fmt.Errorf("field %d: %w", i, err)
		}
		*f = v
	}
	return h, nil
}

// hex8 parses 8 hex digits.
func hex8(b []byte) (uint32, error) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("bad hex digit %q", c)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// pad4 is how many bytes bring pos to a multiple of 4.
func pad4(pos int64) int64 { return (4 - pos%4) % 4 }
