package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestPlainHTTPNeedsTheFlag runs every command against a plain-HTTP
// registry on 127.0.0.1 (where go-containerregistry would fall back to
// HTTP): without --plain-http each exits 5 ("registry unreachable") with a
// message naming --plain-http, and no request reaches the registry; with it
// each reaches the registry (which knows no image).
func TestPlainHTTPNeedsTheFlag(t *testing.T) {
	reg := registrytest.StartEmpty(t)
	requests := &reg.Requests
	ref := reg.Host() + "/os/plain:1"
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	commands := [][]string{
		{"inspect", ref},
		{"mount", "--cache-dir", "none", ref, t.TempDir()},
		{"push", ref, "--arch", "amd64", "--kernel", kernel},
		{"index", ref},
	}
	for _, args := range commands {
		for _, flags := range [][]string{nil, {"--plain-http"}} {
			args := append(append([]string{args[0]}, flags...), args[1:]...)
			t.Run(strings.Join(args[:len(flags)+1], " "), func(t *testing.T) {
				requests.Store(0)
				_, err := execute(args...)
				if len(flags) > 0 {
					if requests.Load() == 0 || exitCode(err) == exitUnreachable {
						t.Errorf("with --plain-http: %d requests, exit %d (%v); want the registry reached", requests.Load(), exitCode(err), err)
					}
					return
				}
				if code := exitCode(err); code != exitUnreachable || !strings.Contains(oneLine(err), "--plain-http") {
					t.Errorf("exit %d (%v), want %d and a message naming --plain-http", code, err, exitUnreachable)
				}
				if n := requests.Load(); n != 0 {
					t.Errorf("%d requests reached the plain-HTTP registry without --plain-http", n)
				}
				t.Logf("exit %d: %s", exitCode(err), oneLine(err))
			})
		}
	}
}

// TestPlainHTTPRedirectExitStatus: a refused redirect from HTTPS to HTTP
// (no registry error around it) exits 5 too.
func TestPlainHTTPRedirectExitStatus(t *testing.T) {
	err := fmt.Errorf("fetch blob sha256:x: %w", &blobstore.PlainHTTPError{URL: "http://storage.example/b", From: "https://r.example/v2/os/x/blobs/sha256:x"})
	if code := exitCode(err); code != exitUnreachable {
		t.Errorf("exit %d, want %d", code, exitUnreachable)
	}
}
