package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultCacheDir: the default comes from the user's own directories,
// and with none of them there is no default (never a shared place such as
// /tmp, where another user could have made the directory first).
func TestDefaultCacheDir(t *testing.T) {
	tests := []struct {
		name        string
		euid        int
		home, xdg   string
		want        string // "" when an error is wanted
		wantInError string
	}{
		{"root", 0, "/home/alice", "/home/alice/.xdg", rootCacheDir, ""},
		{"root without HOME", 0, "", "", rootCacheDir, ""},
		{"user with XDG_CACHE_HOME", 1000, "/home/alice", "/srv/alice-cache", "/srv/alice-cache/osimagefs", ""},
		{"user with HOME only", 1000, "/home/alice", "", "/home/alice/.cache/osimagefs", ""},
		{"user without HOME or XDG_CACHE_HOME", 1000, "", "", "", "--cache-dir"},
		{"user with a relative XDG_CACHE_HOME", 1000, "", "cache", "", "--cache-dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", tc.home)
			t.Setenv("XDG_CACHE_HOME", tc.xdg)
			got, err := defaultCacheDir(tc.euid)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantInError) {
					t.Fatalf("defaultCacheDir = %q, %v; want an error saying %q", got, err, tc.wantInError)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("defaultCacheDir = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestMountRefusesUnsafeCacheDir: a cache directory the disk cache refuses
// is bad input (exit status 2), and the message names it.
func TestMountRefusesUnsafeCacheDir(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "cache")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{link, open} {
		_, err := execute("mount", "--log-level", "error", "--cache-dir", dir, "127.0.0.1:1/os/x:1", t.TempDir())
		if err == nil {
			t.Fatalf("mount --cache-dir %s: no error", dir)
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("mount --cache-dir %s: exit status %d, want %d (%v)", dir, code, exitUsage, err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("mount --cache-dir %s: error %q does not name the directory", dir, err)
		}
	}
}
