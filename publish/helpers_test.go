package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

const testTimeout = 60 * time.Second

// writeRandom writes size random bytes to dir/name and returns the path.
func writeRandom(t *testing.T, dir, name string, size int) string {
	t.Helper()
	b := fixture.RandomBytes(rand.Uint64(), size) // new content every call: pushes differ
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleFiles writes a disk, kernel, initramfs, squashfs, UKI and ISO of
// small random content into a new directory.
func sampleFiles(t *testing.T) Files {
	t.Helper()
	dir := t.TempDir()
	return Files{
		Disk:      writeRandom(t, dir, "disk.raw", 3<<20+17),
		Kernel:    writeRandom(t, dir, "vmlinuz", 200<<10),
		Initramfs: writeRandom(t, dir, "initrd", 300<<10+1),
		Squashfs:  writeRandom(t, dir, "root.sqfs", 1<<20),
		UKI:       writeRandom(t, dir, "uki.efi", 64<<10),
		ISO:       writeRandom(t, dir, "image.iso", 128<<10),
	}
}

// pathFor returns the file of role r in f.
func pathFor(f Files, r image.Role) string {
	for _, rf := range f.list() {
		if rf.role == r {
			return rf.path
		}
	}
	return ""
}

func fileDigest(t *testing.T, p string) digest.Digest {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := digest.Canonical.FromReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// countingTransport counts requests by "METHOD kind", where kind is
// "upload" (/blobs/uploads/...), "blob" (/blobs/<digest>), "manifest" or
// "other".
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func newCountingTransport() *countingTransport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &countingTransport{base: t, n: map[string]int{}}
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := "other"
	switch {
	case strings.Contains(r.URL.Path, "/blobs/uploads/"):
		kind = "upload"
	case strings.Contains(r.URL.Path, "/blobs/"):
		kind = "blob"
	case strings.Contains(r.URL.Path, "/manifests/"):
		kind = "manifest"
	}
	c.mu.Lock()
	c.n[r.Method+" "+kind]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *countingTransport) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *countingTransport) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

// client reads what was pushed with plain net/http, independent of the
// code under test.
type client struct {
	t    *testing.T
	host string
	repo string
}

func (c client) get(ctx context.Context, kind, ref, accept string) ([]byte, http.Header) {
	c.t.Helper()
	u := fmt.Sprintf("http://%s/v2/%s/%s/%s", c.host, c.repo, kind, ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	return body, resp.Header
}

func (c client) index(ctx context.Context, tag string) (ocispec.Index, []byte) {
	c.t.Helper()
	raw, hdr := c.get(ctx, "manifests", tag, image.MediaTypeOCIIndex)
	if ct := hdr.Get("Content-Type"); ct != image.MediaTypeOCIIndex {
		c.t.Errorf("index Content-Type = %q, want %q", ct, image.MediaTypeOCIIndex)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		c.t.Fatalf("parse index: %v", err)
	}
	return idx, raw
}

func (c client) manifest(ctx context.Context, d digest.Digest) (ocispec.Manifest, []byte) {
	c.t.Helper()
	raw, _ := c.get(ctx, "manifests", d.String(), image.MediaTypeOCIManifest)
	if got := digest.FromBytes(raw); got != d {
		c.t.Fatalf("manifest %s: registry sent bytes hashing to %s", d, got)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatalf("parse manifest %s: %v", d, err)
	}
	return m, raw
}

func (c client) blob(ctx context.Context, d digest.Digest) []byte {
	c.t.Helper()
	b, _ := c.get(ctx, "blobs", d.String(), "")
	return b
}

// env is a registry, a counting transport and options pointing at both.
type env struct {
	reg *registrytest.Registry
	ct  *countingTransport
	cl  client
}

func newEnv(t *testing.T, repo string) env {
	reg := registrytest.Start(t)
	return env{reg: reg, ct: newCountingTransport(), cl: client{t: t, host: reg.Host(), repo: repo}}
}

func (e env) options(tag, arch string, files Files) Options {
	return Options{
		Reference:    e.reg.Host() + "/" + e.cl.repo + ":" + tag,
		Architecture: arch,
		Files:        files,
		Connection:   Connection{PlainHTTP: true, Transport: e.ct}, // the test registry speaks plain HTTP
	}
}

// recorder is a Progress that records what it is told.
type recorder struct {
	mu       sync.Mutex
	events   []string
	bytes    map[string]int64 // "step role" -> bytes advanced since the last Start
	current  string
	finished map[string]error
	exists   []image.Role
}

func newRecorder() *recorder {
	return &recorder{bytes: map[string]int64{}, finished: map[string]error{}}
}

func (r *recorder) Start(step Step, b Blob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != "" {
		r.events = append(r.events, "overlap")
	}
	r.current = string(step) + " " + string(b.Role)
	r.bytes[r.current] = 0
	r.events = append(r.events, "start "+r.current)
}

func (r *recorder) Advance(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes[r.current] += n
}

func (r *recorder) Finish(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished[r.current] = err
	r.events = append(r.events, "finish "+r.current)
	r.current = ""
}

func (r *recorder) Exists(b Blob) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exists = append(r.exists, b.Role)
}
