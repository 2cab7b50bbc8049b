package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

func randomBlob(n int) []byte {
	r := rand.New(rand.NewPCG(7, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestReadAtRealRegistry reads ranges of a blob from a real Distribution
// registry, through a counting proxy that sees every byte.
func TestReadAtRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	data := randomBlob(3<<20 + 77)
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
		name    string
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{"start", 0, 4096, 4096, false},
		{"middle", size / 2, 1000, 1000, false},
		{"last byte", size - 1, 1, 1, false},
		{"crossing the end", size - 100, 4096, 100, true},
		{"at the end", size, 10, 0, true},
		{"past the end", size + 4096, 10, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			counter.Reset()
			p := make([]byte, tc.n)
			n, err := s.ReadAt(context.Background(), desc.Digest, p, tc.off)
			if n != tc.wantN {
				t.Fatalf("n = %d, want %d (err %v)", n, tc.wantN, err)
			}
			if tc.wantEOF && !errors.Is(err, io.EOF) || !tc.wantEOF && err != nil {
				t.Fatalf("err = %v, want EOF: %v", err, tc.wantEOF)
			}
			if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
				t.Fatal("wrong bytes")
			}
			// A 416 answer carries a short error text; anything else only the range.
			if got := counter.BlobBytes(); got != int64(n) && !(n == 0 && got < 200) {
				t.Fatalf("%d bytes crossed the wire for a %d-byte read", got, n)
			}
			if rs := counter.Ranges(desc.Digest.String()); len(rs) != 1 {
				t.Fatalf("ranges sent: %q, want exactly one", rs)
			}
		})
	}
}

func TestReadAtMissingBlob(t *testing.T) {
	reg := registrytest.Start(t)
	s, err := Open(context.Background(), reg.Host()+"/os/blob:any", Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.ReadAt(context.Background(), digest.FromString("absent"), make([]byte, 10), 0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// TestOpenUnreachable: a registry that is down is ErrUnreachable, whether
// plain HTTP is allowed or only HTTPS was tried.
func TestOpenUnreachable(t *testing.T) {
	reg := registrytest.Start(t)
	host := reg.Host()
	reg.Stop()
	for _, plainHTTP := range []bool{true, false} {
		_, err := Open(context.Background(), host+"/os/blob:any", Options{PlainHTTP: plainHTTP})
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("PlainHTTP %v: err = %v, want ErrUnreachable", plainHTTP, err)
		}
	}
}
