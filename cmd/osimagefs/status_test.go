package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestStatusTable: one row per mount, digests shortened, an unreadable
// mount shown with its reason, last errors after the table.
func TestStatusTable(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	var b bytes.Buffer
	err := statusTable(&b, []mountStatus{
		{Mountpoint: "/srv/a", Reference: "r.example/os/a@" + d, Digest: d, PID: 7, FetchedBytes: 3 << 20, CachedBytes: 2 << 20, ServedBytes: 1 << 20, Errors: 2, VerifyFailures: 1, LastError: "HTTP 503"},
		{Mountpoint: "/srv/b", Reference: "r.example/os/b:1", Error: "transport endpoint is not connected"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, want := range [][]string{
		{"MOUNTPOINT", "REFERENCE", "DIGEST", "PID", "FETCHED", "CACHED", "SERVED", "ERRORS"},
		{"/srv/a", "r.example/os/a@sha256:abababababab", "sha256:abababababab", "7", "3MiB", "2MiB", "1MiB", "2 (1 corrupt)"},
		{"/srv/b", "r.example/os/b:1", "transport endpoint is not connected"},
		{"/srv/a: last error: HTTP 503"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(b.String(), strings.Repeat("ab", 32)) {
		t.Errorf("the table shows a whole digest:\n%s", b.String())
	}
}

// TestStatusNotOsimagefs: a directory that is no mount, or another file
// system's mount, is a usage error naming it.
func TestStatusNotOsimagefs(t *testing.T) {
	for dir, says := range map[string]string{t.TempDir(): "is not a mount point", "/proc": "is not an osimagefs mount: it is proc"} {
		_, err := osimagefsMounts([]string{dir})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), dir+" "+says) {
			t.Errorf("%s: %v, want a usage error saying %q", dir, err, says)
		}
	}
}
