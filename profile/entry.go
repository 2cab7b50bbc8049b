package profile

import "github.com/opencontainers/go-digest"

// Entry is one byte range of a layer blob read by a boot.
type Entry struct {
	Digest digest.Digest `json:"digest"`
	Off    int64         `json:"off"`
	Len    int64         `json:"len"`
	AtMs   int64         `json:"at_ms"`
}

// End is the offset just past the range.
func (e Entry) End() int64 { return e.Off + e.Len }

// Bytes is the sum of the entries' lengths.
func Bytes(entries []Entry) int64 {
	var n int64
	for _, e := range entries {
		n += e.Len
	}
	return n
}
