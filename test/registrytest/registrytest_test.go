package registrytest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/osimagefs/osimagefs/test/fixture"
)

const (
	testRepo         = "osimagefs/test-image"
	artifactType     = "application/vnd.OpenKCM.image.artifacts.v1+json"
	configMediaType  = "application/vnd.OpenKCM.image.config.v1+json"
	diskMediaType    = "application/vnd.OpenKCM.image.disk.img"
	blobSize         = 3 << 20
	testTimeout      = 30 * time.Second
	latencyToxicMsec = 20
)

// pushedImage is an image pushed to a registry: a random 3 MiB disk blob and an
// OCI manifest referencing it.
type pushedImage struct {
	disk           []byte
	diskDesc       ocispec.Descriptor
	manifest       []byte
	manifestDigest string
}

// newClient returns a client without connection reuse, so every request
// dials (a Stop must be visible as a refused connection).
func newClient() *http.Client {
	return &http.Client{
		Timeout:   testTimeout,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

func pushFixture(t *testing.T, host string) pushedImage {
	t.Helper()
	ctx := fixture.Context(t, testTimeout)

	disk := make([]byte, blobSize)
	if _, err := rand.Read(disk); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, disk, 0o600); err != nil {
		t.Fatal(err)
	}
	diskDesc, err := PushBlobFile(ctx, host, testRepo, path, diskMediaType)
	if err != nil {
		t.Fatalf("PushBlobFile: %v", err)
	}
	if diskDesc.Digest != digest.FromBytes(disk) || diskDesc.Size != blobSize || diskDesc.MediaType != diskMediaType {
		t.Fatalf("PushBlobFile descriptor = %+v", diskDesc)
	}

	configDesc, err := PushBlobBytes(ctx, host, testRepo, []byte(`{"name":"test"}`), configMediaType)
	if err != nil {
		t.Fatalf("PushBlobBytes: %v", err)
	}

	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       configDesc,
		Layers:       []ocispec.Descriptor{diskDesc},
	})
	if err != nil {
		t.Fatal(err)
	}
	mdgst, err := PutManifest(ctx, host, testRepo, "v1", ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if want := digest.FromBytes(manifest).String(); mdgst != want {
		t.Fatalf("PutManifest digest = %s, want %s", mdgst, want)
	}
	return pushedImage{disk: disk, diskDesc: diskDesc, manifest: manifest, manifestDigest: mdgst}
}

// get sends a GET with optional Range and returns status, headers and body.
func get(t *testing.T, client *http.Client, url, rangeHdr string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(fixture.Context(t, testTimeout), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHdr != "" {
		req.Header.Set("Range", rangeHdr)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func blobURL(host string, d digest.Digest) string {
	return fmt.Sprintf("http://%s/v2/%s/blobs/%s", host, testRepo, d)
}

func TestPushAndGetManifest(t *testing.T) {
	reg := Start(t)
	if !strings.HasPrefix(reg.Host(), "127.0.0.1:") {
		t.Fatalf("Host() = %q, want 127.0.0.1:PORT", reg.Host())
	}
	fx := pushFixture(t, reg.Host())
	client := newClient()

	for _, ref := range []string{"v1", fx.manifestDigest} {
		url := fmt.Sprintf("http://%s/v2/%s/manifests/%s", reg.Host(), testRepo, ref)
		resp, body, err := get(t, client, url, "", "Accept", ocispec.MediaTypeImageManifest)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET manifest %s: %s: %s", ref, resp.Status, body)
		}
		if !bytes.Equal(body, fx.manifest) {
			t.Fatalf("GET manifest %s: body differs from what was pushed", ref)
		}
		if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageManifest {
			t.Errorf("GET manifest %s: Content-Type = %q", ref, ct)
		}
		if d := resp.Header.Get("Docker-Content-Digest"); d != fx.manifestDigest {
			t.Errorf("GET manifest %s: Docker-Content-Digest = %q, want %q", ref, d, fx.manifestDigest)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		if m.ArtifactType != artifactType || m.Config.MediaType != configMediaType ||
			len(m.Layers) != 1 || m.Layers[0].MediaType != diskMediaType || m.Layers[0].Digest != fx.diskDesc.Digest {
			t.Errorf("GET manifest %s: unexpected content %+v", ref, m)
		}
	}

	// The whole blob comes back intact.
	resp, body, err := get(t, client, blobURL(reg.Host(), fx.diskDesc.Digest), "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, fx.disk) {
		t.Fatalf("GET blob: %s, %d bytes, equal=%v", resp.Status, len(body), bytes.Equal(body, fx.disk))
	}
}

func TestPutManifestErrorCarriesRegistryBody(t *testing.T) {
	reg := Start(t)
	missing := ocispec.Descriptor{MediaType: diskMediaType, Digest: digest.FromString("missing"), Size: 7}
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.DescriptorEmptyJSON,
		Layers:    []ocispec.Descriptor{missing},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = PutManifest(fixture.Context(t, testTimeout), reg.Host(), testRepo, "broken", ocispec.MediaTypeImageManifest, manifest)
	if err == nil {
		t.Fatal("PutManifest with missing blobs succeeded")
	}
	if !strings.Contains(err.Error(), "MANIFEST_BLOB_UNKNOWN") {
		t.Fatalf("error lacks the registry's error body: %v", err)
	}
}

func TestCountingProxyRange(t *testing.T) {
	reg := Start(t)
	fx := pushFixture(t, reg.Host())
	cnt := NewCountingProxy(t, reg.Host())
	client := newClient()
	dgst := fx.diskDesc.Digest.String()

	// Non-blob traffic is forwarded but not counted as blob traffic.
	resp, _, err := get(t, client, "http://"+cnt.Host()+"/v2/", "")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ via proxy: %v %v", resp, err)
	}
	if cnt.BlobRequests() != 0 || cnt.BlobBytes() != 0 || cnt.Requests() != 1 {
		t.Fatalf("after /v2/: blob requests %d, blob bytes %d, requests %d", cnt.BlobRequests(), cnt.BlobBytes(), cnt.Requests())
	}

	resp, body, err := get(t, client, blobURL(cnt.Host(), fx.diskDesc.Digest), "bytes=100-199")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("range GET: status %s, want 206", resp.Status)
	}
	if !bytes.Equal(body, fx.disk[100:200]) {
		t.Fatalf("range GET: got %d bytes, not blob[100:200]", len(body))
	}
	if cr, want := resp.Header.Get("Content-Range"), fmt.Sprintf("bytes 100-199/%d", blobSize); cr != want {
		t.Errorf("Content-Range = %q, want %q", cr, want)
	}
	if got := cnt.BlobBytes(); got != 100 {
		t.Errorf("BlobBytes = %d, want 100", got)
	}
	if got := cnt.BlobRequests(); got != 1 {
		t.Errorf("BlobRequests = %d, want 1", got)
	}
	if got := cnt.BytesFor(dgst); got != 100 {
		t.Errorf("BytesFor = %d, want 100", got)
	}
	if got := cnt.RequestsFor(dgst); got != 1 {
		t.Errorf("RequestsFor = %d, want 1", got)
	}
	if got := cnt.Ranges(dgst); !slices.Equal(got, []string{"bytes=100-199"}) {
		t.Errorf("Ranges = %q", got)
	}
	if got := cnt.BytesFor("sha256:" + strings.Repeat("0", 64)); got != 0 {
		t.Errorf("BytesFor(unknown) = %d", got)
	}

	// A whole-blob GET is recorded with an empty Range.
	resp, body, err = get(t, client, blobURL(cnt.Host(), fx.diskDesc.Digest), "")
	if err != nil || resp.StatusCode != http.StatusOK || len(body) != blobSize {
		t.Fatalf("full GET via proxy: %v, %d bytes", err, len(body))
	}
	if got := cnt.BytesFor(dgst); got != 100+blobSize {
		t.Errorf("BytesFor after full GET = %d, want %d", got, 100+blobSize)
	}
	if got := cnt.Ranges(dgst); !slices.Equal(got, []string{"bytes=100-199", ""}) {
		t.Errorf("Ranges after full GET = %q", got)
	}

	cnt.Reset()
	if cnt.BlobBytes() != 0 || cnt.BlobRequests() != 0 || cnt.BytesFor(dgst) != 0 || cnt.RequestsFor(dgst) != 0 || len(cnt.Ranges(dgst)) != 0 {
		t.Errorf("Reset left counts: %d bytes, %d requests, ranges %q", cnt.BlobBytes(), cnt.BlobRequests(), cnt.Ranges(dgst))
	}
}

func TestCountingProxyPushThrough(t *testing.T) {
	reg := Start(t)
	cnt := NewCountingProxy(t, reg.Host())
	data := []byte("pushed through the counting proxy")
	desc, err := PushBlobBytes(fixture.Context(t, testTimeout), cnt.Host(), testRepo, data, "application/octet-stream")
	if err != nil {
		t.Fatalf("push via proxy: %v", err)
	}
	_, body, err := get(t, newClient(), blobURL(reg.Host(), desc.Digest), "")
	if err != nil || !bytes.Equal(body, data) {
		t.Fatalf("GET pushed blob: %v %q", err, body)
	}
	if cnt.BlobRequests() != 0 {
		t.Errorf("upload requests counted as blob requests: %d", cnt.BlobRequests())
	}
}

func TestStopRestart(t *testing.T) {
	reg := Start(t)
	host := reg.Host()
	fx := pushFixture(t, host)
	client := newClient()

	reg.Stop()
	_, _, err := get(t, client, blobURL(host, fx.diskDesc.Digest), "")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET after Stop: err = %v, want connection refused", err)
	}
	reg.Stop() // idempotent

	reg.Restart(t)
	if reg.Host() != host {
		t.Fatalf("Host changed across Restart: %s -> %s", host, reg.Host())
	}
	resp, body, err := get(t, client, blobURL(host, fx.diskDesc.Digest), "bytes=1000-1999")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, fx.disk[1000:2000]) {
		t.Fatalf("GET after Restart: %s, %d bytes", resp.Status, len(body))
	}

	reg.Restart(t) // restart while running
	resp, _, err = get(t, client, fmt.Sprintf("http://%s/v2/%s/manifests/v1", host, testRepo), "", "Accept", ocispec.MediaTypeImageManifest)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest after second Restart: %v %v", resp, err)
	}
}

func TestToxiLatency(t *testing.T) {
	reg := Start(t)
	fx := pushFixture(t, reg.Host())
	toxi := NewToxiProxy(t, reg.Host())
	client := newClient()
	url := blobURL(toxi.Host(), fx.diskDesc.Digest)

	toxi.AddLatency(latencyToxicMsec)
	start := time.Now()
	resp, body, err := get(t, client, url, "bytes=100-199")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, fx.disk[100:200]) {
		t.Fatalf("GET via toxiproxy: %s, %d bytes", resp.Status, len(body))
	}
	if elapsed < latencyToxicMsec*time.Millisecond {
		t.Fatalf("GET with %dms latency took %v", latencyToxicMsec, elapsed)
	}
	t.Logf("range GET with %dms latency toxic took %v", latencyToxicMsec, elapsed)

	// Disable refuses connections; Enable serves again on the same address.
	toxi.RemoveAll()
	toxi.Disable()
	if _, _, err := get(t, client, url, ""); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("GET with toxiproxy disabled: err = %v, want connection refused", err)
	}
	toxi.Enable()
	resp, body, err = get(t, client, url, "")
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, fx.disk) {
		t.Fatalf("GET after Enable: %v, %d bytes", err, len(body))
	}
}

func TestToxiSlicerAndBandwidth(t *testing.T) {
	reg := Start(t)
	fx := pushFixture(t, reg.Host())
	toxi := NewToxiProxy(t, reg.Host())
	client := newClient()
	url := blobURL(toxi.Host(), fx.diskDesc.Digest)

	toxi.AddSlicer()
	resp, body, err := get(t, client, url, "bytes=0-65535")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, fx.disk[:65536]) {
		t.Fatalf("GET through slicer: %v, %d bytes", err, len(body))
	}

	toxi.RemoveAll()
	toxi.AddBandwidth(1000) // 1000 KB/s: 200 KB take about 200ms
	start := time.Now()
	resp, body, err = get(t, client, url, "bytes=0-199999")
	elapsed := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, fx.disk[:200000]) {
		t.Fatalf("GET through bandwidth limit: %v, %d bytes", err, len(body))
	}
	if elapsed < 150*time.Millisecond {
		t.Fatalf("200 KB at 1000 KB/s took only %v", elapsed)
	}
}

func TestToxiResetPeer(t *testing.T) {
	reg := Start(t)
	fx := pushFixture(t, reg.Host())
	toxi := NewToxiProxy(t, reg.Host())
	toxi.AddResetPeer(1)
	if _, _, err := get(t, newClient(), blobURL(toxi.Host(), fx.diskDesc.Digest), ""); err == nil {
		t.Fatal("GET through reset_peer toxic succeeded")
	}
}

func TestParseBlobPath(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path, repo, dgst string
		ok               bool
	}{
		{"/v2/a/blobs/" + d, "a", d, true},
		{"/v2/org/team/img/blobs/" + d, "org/team/img", d, true},
		{"/v2/a/blobs/uploads/", "", "", false},
		{"/v2/a/blobs/uploads/0d6f1d43-6b6f-4f64-9e57-3c0a3b1e3d7a", "", "", false},
		{"/v2/a/manifests/" + d, "", "", false},
		{"/v2/", "", "", false},
	} {
		repo, dgst, ok := ParseBlobPath(tc.path)
		if repo != tc.repo || dgst != tc.dgst || ok != tc.ok {
			t.Errorf("ParseBlobPath(%q) = %q, %q, %v", tc.path, repo, dgst, ok)
		}
	}
}

func TestStartNoTest(t *testing.T) {
	reg, err := StartNoTest(fixture.Context(t, testTimeout), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := reg.Dir()
	if _, err := PushBlobBytes(fixture.Context(t, testTimeout), reg.Host(), testRepo, []byte("x"), "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary storage %s not removed: %v", dir, err)
	}
	if err := reg.RestartNoTest(fixture.Context(t, testTimeout)); err == nil {
		t.Error("RestartNoTest after Close succeeded")
	}
}
