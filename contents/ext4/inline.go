package ext4

import (
	"encoding/binary"
)

// In-inode extended attributes: a magic after the inode's extra fields, then
// entries whose values are placed relative to the first entry.
const (
	xattrMagic     = 0xEA020000
	xattrEntrySize = 16
	// system.data holds inline data past the 60 bytes of i_block: index 7
	// (system.), name "data".
	xattrIndexSystem = 7
)

// parseInline sets in.inline to i_block followed by the value of the
// system.data attribute in the inode's extra space (if any), and checks the
// inode's size against it.
func (f *fsys) parseInline(in *inode, extra []byte) error {
	data := in.iblock[:]
	if rest, ok, err := systemData(extra); err != nil {
		return corruptf("inode %d: inline data attribute: %s", in.ino, err)
	} else if ok {
		data = append(data[:iBlockSize:iBlockSize], rest...)
	}
	if in.size > int64(len(data)) {
		return corruptf("inode %d: size %d over its %d bytes of inline data", in.ino, in.size, len(data))
	}
	in.inline = data
	return nil
}

// systemData finds the system.data value in the in-inode attributes x.
func systemData(x []byte) ([]byte, bool, error) {
	le := binary.LittleEndian
	if len(x) < 4 || le.Uint32(x) != xattrMagic {
		return nil, false, nil
	}
	entries := x[4:]
	for pos := 0; pos+4 <= len(entries) && le.Uint32(entries[pos:]) != 0; {
		if pos+xattrEntrySize > len(entries) {
			return nil, false, errString("entry past the inode's end")
		}
		e := entries[pos:]
		nameLen, index := int(e[0]), e[1]
		valueOff, valueInum, valueSize := int(le.Uint16(e[2:])), le.Uint32(e[4:]), int(le.Uint32(e[8:]))
		if pos+xattrEntrySize+nameLen > len(entries) {
			return nil, false, errString("name past the inode's end")
		}
		name := string(e[xattrEntrySize : xattrEntrySize+nameLen])
		if index == xattrIndexSystem && name == "data" {
			if valueInum != 0 {
				return nil, false, errString("value in an inode of its own")
			}
			if valueOff > len(entries) || valueSize > len(entries)-valueOff {
				return nil, false, errString("value past the inode's end")
			}
			return entries[valueOff : valueOff+valueSize], true, nil
		}
		pos += (xattrEntrySize + nameLen + 3) &^ 3
	}
	return nil, false, nil
}

// errString is an error that is only its text.
type errString string

func (e errString) Error() string { return string(e) }
