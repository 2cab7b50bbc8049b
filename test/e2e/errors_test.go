package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestMountErrors checks that each way a mount can fail ends quickly with a
// one-line reason and a distinct exit status, and leaves nothing mounted.
func TestMountErrors(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	host := reg.Host()
	ctx := context.Background()

	// A container image: a real manifest, but not an OS image.
	layer, err := registrytest.PushBlobBytes(ctx, host, "apps/web", []byte("not a tarball"), ocispec.MediaTypeImageLayerGzip)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := registrytest.PushBlobBytes(ctx, host, "apps/web", []byte(`{"architecture":"amd64","os":"linux"}`), ocispec.MediaTypeImageConfig)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ocispec.Manifest{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}})
	if _, err := registrytest.PutManifest(ctx, host, "apps/web", "latest", ocispec.MediaTypeImageManifest, raw); err != nil {
		t.Fatal(err)
	}
	// A tiny OS image, so the mount point cases get past resolution.
	kernel, err := registrytest.PushBlobBytes(ctx, host, "os/tiny", []byte("kernel"), "application/vnd.OpenKCM.image.kernel")
	if err != nil {
		t.Fatal(err)
	}
	ocfg, _ := registrytest.PushBlobBytes(ctx, host, "os/tiny", []byte(`{}`), "application/vnd.OpenKCM.image.config.v1+json")
	raw, _ = json.Marshal(ocispec.Manifest{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest, Config: ocfg, Layers: []ocispec.Descriptor{kernel}})
	if _, err := registrytest.PutManifest(ctx, host, "os/tiny", "1", ocispec.MediaTypeImageManifest, raw); err != nil {
		t.Fatal(err)
	}

	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy := t.TempDir()
	startMount(t, host+"/os/tiny:1", busy, "--plain-http")

	tests := []struct {
		name     string
		ref      string
		dir      string
		wantCode int
		wantMsg  string
	}{
		{"missing tag", host + "/os/tiny:nope", t.TempDir(), 3, "not found"},
		{"missing repository", host + "/os/absent:1", t.TempDir(), 3, "not found"},
		{"missing digest", host + "/os/tiny@" + digest.FromString("x").String(), t.TempDir(), 3, "not found"},
		{"not an OS image", host + "/apps/web:latest", t.TempDir(), 6, "not an OS image"},
		{"bad reference", "UPPER/Case::x", t.TempDir(), 1, "parse reference"},
		{"mount point missing", host + "/os/tiny:1", filepath.Join(t.TempDir(), "absent"), 7, "no such file or directory"},
		{"mount point is a file", host + "/os/tiny:1", notADir, 7, "not a directory"},
		{"already mounted", host + "/os/tiny:1", busy, 7, "already mounted"},
		{"bad platform", host + "/os/tiny:1", t.TempDir(), 2, "os/arch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"mount", "--plain-http", tc.ref, tc.dir}
			if tc.name == "bad platform" {
				args = []string{"mount", "--plain-http", "--platform", "amd64", tc.ref, tc.dir}
			}
			_, stderr, code := runCLI(t, 30*time.Second, args...)
			checkFailure(t, stderr, code, tc.wantCode, tc.wantMsg)
			if tc.dir != busy && isMounted(tc.dir) {
				t.Fatal("left a mount behind")
			}
		})
	}

	t.Run("registry stopped", func(t *testing.T) {
		reg.Stop()
		defer reg.Restart(t)
		start := time.Now()
		_, stderr, code := runCLI(t, 60*time.Second, "mount", "--plain-http", host+"/os/tiny:1", t.TempDir())
		checkFailure(t, stderr, code, 5, "unreachable")
		t.Logf("failed after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
	})
}

func checkFailure(t *testing.T, stderr string, code, wantCode int, wantMsg string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit status %d, want %d; stderr: %s", code, wantCode, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "osimagefs: ") || !strings.Contains(strings.ToLower(last), strings.ToLower(wantMsg)) {
		t.Errorf("last stderr line %q, want a one-line reason mentioning %q", last, wantMsg)
	}
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }
