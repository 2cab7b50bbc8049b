package ext4

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/osimagefs/osimagefs/contents/node"
)

const (
	direntHeader = 8
	minRecLen    = 12
	// dirChunk is the most of a directory read from the image at once.
	dirChunk = 256 << 10
)

// ReadDir lists directory ino without "." and "..", in stored order. Hash
// tree directories are read linearly: their index blocks look like one
// unused entry covering the block.
func (f *fsys) ReadDir(ctx context.Context, ino node.Ino) ([]node.DirEntry, error) {
	in, err := f.inode(ctx, ino)
	if err != nil {
		return nil, err
	}
	if in.typ() != sIFDIR {
		return nil, fmt.Errorf("ext4: inode %d: %w", ino, node.ErrNotDir)
	}
	if in.size > f.limits.DirBytes {
		return nil, corruptf("directory %d: %d bytes over the limit of %d", ino, in.size, f.limits.DirBytes)
	}
	var out []node.DirEntry
	if in.inline != nil {
		// The parent's inode number, then entries to the end of i_block,
		// then entries in the system.data attribute.
		data := in.inline[:in.size]
		if len(data) < 4 {
			return nil, corruptf("directory %d: %d bytes of inline data", ino, len(data))
		}
		for _, region := range [][]byte{data[4:min(len(data), iBlockSize)], data[min(len(data), iBlockSize):]} {
			if out, err = f.parseDirents(out, region, in.ino, 0); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	bs := f.sb.blockSize
	if in.size%bs != 0 {
		return nil, corruptf("directory %d: size %d is not a multiple of the block size %d", ino, in.size, bs)
	}
	buf := make([]byte, min(in.size, max(bs, dirChunk/bs*bs)))
	for off := int64(0); off < in.size; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), in.size-off)]
		if err := f.readData(ctx, in, chunk, off); err != nil {
			return nil, fmt.Errorf("directory %d: %w", ino, err)
		}
		for b := int64(0); b < int64(len(chunk)); b += bs {
			if out, err = f.parseDirents(out, chunk[b:b+bs], in.ino, off+b); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// parseDirents appends the entries of one directory block (or inline
// region) b, at offset at of directory dir, to out. A block of zeros is a
// hole and holds nothing.
func (f *fsys) parseDirents(out []node.DirEntry, b []byte, dir uint32, at int64) ([]node.DirEntry, error) {
	le := binary.LittleEndian
	if isZero(b) {
		return out, nil
	}
	for pos := 0; pos < len(b); {
		if len(b)-pos < direntHeader {
			return nil, corruptf("directory %d: entry at %d: %d bytes left in its block", dir, at+int64(pos), len(b)-pos)
		}
		e := b[pos:]
		ino := le.Uint32(e)
		recLen := f.recLen(le.Uint16(e[4:]))
		nameLen := int(e[6])
		if f.sb.incompat&incompatFiletype == 0 {
			nameLen |= int(e[7]) << 8
		}
		if recLen < minRecLen || recLen%4 != 0 || recLen > len(b)-pos || direntHeader+nameLen > recLen {
			return nil, corruptf("directory %d: entry at %d: record length %d for a name of %d bytes, %d bytes left in its block",
				dir, at+int64(pos), recLen, nameLen, len(b)-pos)
		}
		name := string(e[direntHeader : direntHeader+nameLen])
		pos += recLen
		if ino == 0 || name == "." || name == ".." {
			continue
		}
		if ino > f.sb.inodesCount {
			return nil, corruptf("directory %d: entry %q: inode %d outside 1..%d", dir, name, ino, f.sb.inodesCount)
		}
		if len(out) >= f.limits.Entries {
			return nil, corruptf("directory %d: over %d entries", dir, f.limits.Entries)
		}
		out = append(out, node.DirEntry{Name: name, Ino: node.Ino(ino)})
	}
	return out, nil
}

// recLen decodes a record length: with 64 KiB blocks, 0 and 65535 mean the
// whole block and the low 2 bits hold bits 16 and 17.
func (f *fsys) recLen(v uint16) int {
	if f.sb.blockSize < 1<<16 {
		return int(v)
	}
	if v == 0 || v == 0xFFFF {
		return 1 << 16
	}
	return int(v&0xFFFC) | int(v&3)<<16
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
