package fs

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

// cachedBlob is a memBlob that says how much of it is local.
type cachedBlob struct {
	memBlob
	cached int64
}

func (c cachedBlob) CachedBytes() int64 { return c.cached }

func TestXattrs(t *testing.T) {
	r := NewRoot(&image.Tree{}, nil, Options{Status: func() []byte { return []byte(`{"pid":1}`) }})
	layer := &fileNode{root: r, file: image.File{Path: "a/disk.img", Size: 10, Digest: digest.FromString("x"), MediaType: "application/x-disk"},
		blob: cachedBlob{memBlob("0123456789"), 4}}
	doc := &fileNode{root: r, file: image.File{Path: "a/manifest.json", Data: []byte("{}"), Size: 2, MediaType: "application/vnd.oci.image.manifest.v1+json"}}
	get := func(x interface {
		Getxattr(context.Context, string, []byte) (uint32, syscall.Errno)
	}, attr string) (string, syscall.Errno) {
		buf := make([]byte, 256)
		n, errno := x.Getxattr(context.Background(), attr, buf)
		return string(buf[:n]), errno
	}
	for _, c := range []struct {
		name string
		x    interface {
			Getxattr(context.Context, string, []byte) (uint32, syscall.Errno)
		}
		attr, want string
		errno      syscall.Errno
	}{
		{"layer digest", layer, XattrDigest, digest.FromString("x").String(), 0},
		{"layer media type", layer, XattrMediaType, "application/x-disk", 0},
		{"layer cached", layer, XattrCached, "4", 0},
		{"document digest", doc, XattrDigest, "", syscall.ENODATA},
		{"document cached", doc, XattrCached, "2", 0},
		{"unknown", layer, "user.other", "", syscall.ENODATA},
		{"root status", r, XattrStatus, `{"pid":1}`, 0},
		{"root other", r, XattrDigest, "", syscall.ENODATA},
	} {
		if got, errno := get(c.x, c.attr); got != c.want || errno != c.errno {
			t.Errorf("%s: %q %v, want %q %v", c.name, got, errno, c.want, c.errno)
		}
	}
	// A buffer too small (or a size query) gets the size and ERANGE.
	if n, errno := layer.Getxattr(context.Background(), XattrMediaType, nil); n != uint32(len("application/x-disk")) || errno != syscall.ERANGE {
		t.Errorf("size query: %d %v", n, errno)
	}
	buf := make([]byte, 256)
	n, errno := layer.Listxattr(context.Background(), buf)
	if got := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00"); errno != 0 || strings.Join(got, ",") != XattrDigest+","+XattrMediaType+","+XattrCached {
		t.Errorf("list: %q %v", got, errno)
	}
	n, _ = doc.Listxattr(context.Background(), buf)
	if strings.Contains(string(buf[:n]), XattrDigest) {
		t.Errorf("a document without a digest lists %q", buf[:n])
	}
}
