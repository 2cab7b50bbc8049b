package blobstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// splitParts cuts n bytes into parts of size each (the last may be shorter).
func splitParts(n, size int) [][]byte {
	var parts [][]byte
	for n > 0 {
		k := min(n, size)
		parts = append(parts, bytes.Repeat([]byte{0xEE}, k))
		n -= k
	}
	return parts
}

// TestReadPartsStreams reads a range as parts through a real registry:
// one request, parts done in order with the right bytes.
func TestReadPartsStreams(t *testing.T) {
	e := newFaultEnv(t, 3<<20, Options{})
	off := int64(12345)
	parts := splitParts(2<<20+77, 256<<10)
	var order []int
	err := e.store.ReadParts(context.Background(), e.desc.Digest, parts, off, func(i int) { order = append(order, i) })
	if err != nil {
		t.Fatal(err)
	}
	pos := off
	for i, p := range parts {
		if order[i] != i {
			t.Fatalf("parts done in order %v", order)
		}
		if !bytes.Equal(p, e.data[pos:pos+int64(len(p))]) {
			t.Fatalf("part %d: wrong bytes", i)
		}
		pos += int64(len(p))
	}
	if n := len(e.front.BlobGets()); n != 1 {
		t.Fatalf("%d blob GETs, want 1", n)
	}
}

// TestReadPartsResumesAfterACutBody: the body is cut after 600 KiB; the
// parts that arrived stay done and the retry asks only for the rest.
func TestReadPartsResumesAfterACutBody(t *testing.T) {
	e := newFaultEnv(t, 3<<20, Options{})
	e.front.Inject(1, faulty.CutBody(600<<10))
	parts := splitParts(2<<20, 256<<10)
	done := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.store.ReadParts(ctx, e.desc.Digest, parts, 0, func(i int) { done++ }); err != nil {
		t.Fatal(err)
	}
	if done != len(parts) {
		t.Fatalf("%d parts done, want %d", done, len(parts))
	}
	if !bytes.Equal(bytes.Join(parts, nil), e.data[:2<<20]) {
		t.Fatal("wrong bytes after the retry")
	}
	gets := e.front.BlobGets()
	if len(gets) != 2 {
		t.Fatalf("%d blob GETs, want 2 (the cut one and the resumed one)", len(gets))
	}
	if r := gets[1].Range; !strings.HasPrefix(r, "bytes=524288-") {
		t.Fatalf("the retry asked %q, want it to start at the first part not done (524288)", r)
	}
}

// TestReadPartsShortBlob: a range beyond the blob's end fails at once with
// ErrShortBlob and no part is done.
func TestReadPartsShortBlob(t *testing.T) {
	e := newFaultEnv(t, 1<<20, Options{})
	parts := splitParts(2<<20, 256<<10)
	done := 0
	start := time.Now()
	err := e.store.ReadParts(context.Background(), e.desc.Digest, parts, 0, func(int) { done++ })
	if !errors.Is(err, ErrShortBlob) {
		t.Fatalf("err = %v, want ErrShortBlob", err)
	}
	if done != 0 {
		t.Fatalf("%d parts done for a blob too short", done)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s: a short blob was retried", took)
	}
}

// TestReadPartsRealRegistry reads ranges of a blob from a real Distribution
// registry, through a counting proxy that sees every byte: exactly the range
// crosses the wire, and a range beyond the blob's end is an ErrShortBlob.
func TestReadPartsRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	data := fixture.RandomBytes(7, 3<<20+77)
	desc, err := registrytest.PushBlobBytes(context.Background(), reg.Host(), "os/blob", data, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	counter := registrytest.NewCountingProxy(t, reg.Host())
	s, err := Open(context.Background(), counter.Host()+"/os/blob:any", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	tests := []struct {
		name  string
		off   int64
		n     int
		short bool // the range ends beyond the blob
	}{
		{"start", 0, 4096, false},
		{"middle", size / 2, 1000, false},
		{"last byte", size - 1, 1, false},
		{"up to the end", size - 100, 100, false},
		{"crossing the end", size - 100, 4096, true},
		{"at the end", size, 10, true},
		{"past the end", size + 4096, 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			counter.Reset()
			p := make([]byte, tc.n)
			err := readRange(context.Background(), s, desc.Digest, p, tc.off)
			if tc.short {
				if !errors.Is(err, ErrShortBlob) {
					t.Fatalf("err = %v, want ErrShortBlob", err)
				}
				// A short answer's bytes are not used: none or a few cross.
				if got := counter.BlobBytes(); got > 200 {
					t.Fatalf("%d bytes crossed the wire for a range beyond the end", got)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(p, data[tc.off:tc.off+int64(tc.n)]) {
					t.Fatal("wrong bytes")
				}
				if got := counter.BlobBytes(); got != int64(tc.n) {
					t.Fatalf("%d bytes crossed the wire for a %d-byte read", got, tc.n)
				}
			}
			if rs := counter.Ranges(desc.Digest.String()); len(rs) != 1 {
				t.Fatalf("ranges sent: %q, want exactly one", rs)
			}
		})
	}
}

func TestReadPartsMissingBlob(t *testing.T) {
	reg := registrytest.Start(t)
	s, err := Open(context.Background(), reg.Host()+"/os/blob:any", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	err = readRange(context.Background(), s, digest.FromString("absent"), make([]byte, 10), 0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}
