package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
)

type disk struct{ used, limit int64 }

func (d disk) Used() int64  { return d.used }
func (d disk) Limit() int64 { return d.limit }

// TestLabels: fetched bytes go to the registry host and the role of their
// blob, served bytes to the file's role; the totals add up; the registry
// lints clean.
func TestLabels(t *testing.T) {
	m := New(disk{used: 3 << 20, limit: 10 << 20})
	dk, dd := digest.FromString("kernel"), digest.FromString("disk")
	tree := &image.Tree{Digest: digest.FromString("index"), Files: []image.File{
		{Path: "amd64/x/kernel", Role: image.RoleKernel, Digest: dk, Size: 10},
		{Path: "amd64/x/disk.img", Role: image.RoleDisk, Digest: dd, Size: 20},
		{Path: "amd64/x/blob", Role: image.RoleUnknown, Digest: digest.FromString("u"), Size: 5},
		{Path: "amd64/x/manifest.json", Role: image.RoleManifest, Data: []byte("{}"), Size: 2},
	}}
	m.SetImage("registry.example:5000", "os/x", tree)
	m.Fetched(dk, 7)
	m.Fetched(dd, 11)
	m.Fetched(dd, 1)
	m.Fetched(digest.FromString("not in the tree"), 2)
	m.Served(tree.Files[0], 5)
	m.Served(tree.Files[3], 2)
	m.Request(dd, 30*time.Millisecond, nil)
	m.Request(dd, time.Second, errors.New("boom"))
	m.Lookup(lazy.TierMemory, false)
	m.Lookup(lazy.TierDisk, true)
	m.Ahead(dd, lazy.AheadReadAhead, 4)
	m.Ahead(dk, lazy.AheadFill, 9)
	m.Ahead(dd, lazy.AheadReplay, 13)
	m.Retried("registry.example:5000", errors.New("503"))
	m.ReadFailed(tree.Files[1], fmt.Errorf("read: %w", &blobstore.StatusError{Code: 503}))
	m.ReadRequest(tree.Files[0])
	m.ReadRequest(tree.Files[0])
	m.ReadRequest(tree.Files[3])
	m.PassthroughOpened(tree.Files[1])

	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.fetchedBytes.WithLabelValues("registry.example:5000", "kernel")), 7, "kernel fetched"},
		{testutil.ToFloat64(m.fetchedBytes.WithLabelValues("registry.example:5000", "disk")), 12, "disk fetched"},
		{testutil.ToFloat64(m.fetchedBytes.WithLabelValues("registry.example:5000", "other")), 2, "other fetched"},
		{testutil.ToFloat64(m.served.WithLabelValues("kernel")), 5, "kernel served"},
		{testutil.ToFloat64(m.served.WithLabelValues("other")), 2, "document served"},
		{testutil.ToFloat64(m.fetchRequests.WithLabelValues("registry.example:5000", "disk")), 2, "disk requests"},
		{testutil.ToFloat64(m.fetchFailures.WithLabelValues("registry.example:5000", "disk")), 1, "disk failures"},
		{testutil.ToFloat64(m.cacheMisses[0]), 1, "memory misses"},
		{testutil.ToFloat64(m.cacheHits[1]), 1, "disk hits"},
		{testutil.ToFloat64(m.readAhead.WithLabelValues("disk")), 4, "read-ahead"},
		{testutil.ToFloat64(m.prefetch.WithLabelValues("kernel")), 9, "prefetch"},
		{testutil.ToFloat64(m.replay.WithLabelValues("disk")), 13, "profile replay"},
		{testutil.ToFloat64(m.prefetch.WithLabelValues("disk")), 0, "replay is not prefetch"},
		{testutil.ToFloat64(m.eio.WithLabelValues(CauseHTTPStatus)), 1, "EIO http_status"},
		{testutil.ToFloat64(m.readRequests.WithLabelValues("kernel")), 2, "kernel READs"},
		{testutil.ToFloat64(m.readRequests.WithLabelValues("other")), 1, "document READs"},
		{testutil.ToFloat64(m.readRequests.WithLabelValues("disk")), 0, "disk READs"},
		{testutil.ToFloat64(m.passOpens.WithLabelValues("disk")), 1, "disk passthrough opens"},
		{testutil.ToFloat64(m.passOpens.WithLabelValues("kernel")), 0, "kernel passthrough opens"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	tot := m.Totals()
	if tot.FetchedBytes != 21 || tot.ServedBytes != 7 || tot.ReadErrors != 1 || tot.Retries != 1 || !strings.Contains(tot.LastError, "503") {
		t.Errorf("totals %+v", tot)
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	n, err := testutil.GatherAndCount(m.Registry(), "osimagefs_disk_cache_bytes")
	if err != nil || n != 1 {
		t.Errorf("osimagefs_disk_cache_bytes: %d series, %v", n, err)
	}
}

func TestCause(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read: %w", lazy.ErrCorruptBlob), CauseCorrupt},
		{fmt.Errorf("fetch: %w: piece 3", lazy.ErrCorruptPiece), CauseCorrupt},
		{fmt.Errorf("x: %w", lazy.ErrBlobSize), CauseShortBlob},
		{&blobstore.StatusError{Code: 404}, CauseNotFound},
		{&blobstore.StatusError{Code: 403}, CauseUnauthorized},
		{fmt.Errorf("%w: %w (after 3 attempts: %w)", errors.New("read"), context.DeadlineExceeded, blobstore.ErrUnreachable), CauseUnreachable},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), CauseTimeout},
		{fmt.Errorf("%w: bad range", blobstore.ErrBadResponse), CauseBadResponse},
		{context.Canceled, CauseCancelled},
		{errors.New("?"), CauseOther},
	} {
		if got := Cause(c.err); got != c.want {
			t.Errorf("Cause(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
