package iso9660

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/contents/node"
)

// maxContinuations bounds the CE chain of one record's system use area.
const maxContinuations = 16

// maxName bounds a Rock Ridge name gathered over NM entries.
const maxName = 1024

// rock is what the Rock Ridge (RRIP) entries of one record say.
type rock struct {
	px          bool
	mode, nlink uint32
	uid, gid    uint32
	serial      uint32
	hasSerial   bool
	rdev        uint64
	name        string
	hasName     bool
	link        string
	mtime       time.Time
	hasMtime    bool
	relocated   bool   // RE: shown where its CL points, not here
	child       uint32 // CL: the block of a relocated directory
	hasChild    bool
}

// ceReader reads a continuation area: length bytes at offset in block.
type ceReader func(ctx context.Context, block, offset, length uint32) ([]byte, error)

// parseRock decodes the SUSP entries of su (after skip bytes) and of the
// continuation areas they point to.
func parseRock(ctx context.Context, su []byte, skip int, ce ceReader, linkMax int) (rock, error) {
	var k rock
	var name, link strings.Builder
	linkSep := false
	if skip > len(su) {
		return k, nil
	}
	area := su[skip:]
	for hops := 0; ; hops++ {
		var next []uint32
		for len(area) >= 4 {
			sig, n := string(area[:2]), int(area[2])
			if n < 4 || n > len(area) {
				break
			}
			e := area[4:n]
			area = area[n:]
			switch sig {
			case "PX":
				if len(e) >= 32 {
					k.px = true
					k.mode, k.nlink = le32(e[0:]), le32(e[8:])
					k.uid, k.gid = le32(e[16:]), le32(e[24:])
				}
				if len(e) >= 40 {
					k.serial, k.hasSerial = le32(e[32:]), true
				}
			case "PN":
				if len(e) >= 16 {
					hi, lo := le32(e[0:]), le32(e[8:])
					if hi == 0 && lo&^0xff != 0 {
						hi, lo = lo>>8, lo&0xff
					}
					k.rdev = unix.Mkdev(hi, lo)
				}
			case "NM":
				if len(e) >= 1 && e[0]&0x06 == 0 {
					if name.Len()+len(e)-1 > maxName {
						return k, fmt.Errorf("Rock Ridge name: %w: over %d bytes", node.ErrCorrupt, maxName)
					}
					name.Write(e[1:])
					k.hasName = true
				}
			case "SL":
				if len(e) < 1 {
					continue
				}
				c := e[1:]
				for len(c) >= 2 && 2+int(c[1]) <= len(c) {
					flags, text := c[0], c[2:2+int(c[1])]
					c = c[2+int(c[1]):]
					switch {
					case flags&0x08 != 0:
						link.Reset()
						link.WriteByte('/')
						linkSep = false
						continue
					}
					if linkSep {
						link.WriteByte('/')
					}
					switch {
					case flags&0x02 != 0:
						link.WriteByte('.')
					case flags&0x04 != 0:
						link.WriteString("..")
					default:
						link.Write(text)
					}
					linkSep = flags&0x01 == 0
					if link.Len() > linkMax {
						return k, fmt.Errorf("Rock Ridge symlink: %w: over %d bytes", node.ErrCorrupt, linkMax)
					}
				}
			case "TF":
				if len(e) < 1 {
					continue
				}
				flags, ts, sz := e[0], e[1:], 7
				if flags&0x80 != 0 {
					sz = 17
				}
				if flags&0x02 != 0 {
					i := 0
					if flags&0x01 != 0 {
						i = 1
					}
					if len(ts) >= (i+1)*sz {
						if sz == 7 {
							k.mtime = shortTime(ts[i*7:])
						} else {
							k.mtime = longTime(ts[i*17:])
						}
						k.hasMtime = true
					}
				}
			case "RE":
				k.relocated = true
			case "CL":
				if len(e) >= 8 {
					k.child, k.hasChild = le32(e), true
				}
			case "CE":
				if len(e) >= 24 {
					next = []uint32{le32(e[0:]), le32(e[8:]), le32(e[16:])}
				}
			case "ST":
				area = nil
			}
		}
		if next == nil {
			break
		}
		if hops >= maxContinuations {
			return k, fmt.Errorf("Rock Ridge continuation: %w: over %d areas", node.ErrCorrupt, maxContinuations)
		}
		var err error
		if area, err = ce(ctx, next[0], next[1], next[2]); err != nil {
			return k, err
		}
	}
	k.name = name.String()
	k.link = link.String()
	return k, nil
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
