package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/cache"
	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/metrics"
)

// metricsAddrHelp is the help of --metrics-addr.
const metricsAddrHelp = "serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9101); none if empty"

// newMetrics makes the counters of a mount; they are kept even without
// --metrics-addr, for `osimagefs status`.
func newMetrics(disk *cache.Disk) *metrics.Metrics {
	if disk == nil {
		return metrics.New(nil) // not a typed nil in the interface
	}
	return metrics.New(disk)
}

// serveMetrics serves m at addr when it is set, and returns the function
// that stops it.
func serveMetrics(m *metrics.Metrics, addr string, log *slog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	bound, stop, err := m.Serve(addr, log)
	if err != nil {
		return nil, usageError{err}
	}
	log.Info("serving metrics", "url", "http://"+bound+"/metrics")
	return stop, nil
}

// mountStatus is the status of one mount: the value of its root's
// user.osimagefs.status attribute, and a row of `osimagefs status`.
type mountStatus struct {
	Mountpoint     string `json:"mountpoint"`
	Reference      string `json:"reference"`
	Digest         string `json:"digest"`
	PID            int    `json:"pid"`
	FetchedBytes   int64  `json:"fetched_bytes"`
	CachedBytes    int64  `json:"cached_bytes"`
	ServedBytes    int64  `json:"served_bytes"`
	Errors         int64  `json:"errors"` // reads that failed with EIO
	VerifyFailures int64  `json:"verify_failures"`
	Retries        int64  `json:"retries"`
	LastError      string `json:"last_error,omitempty"`
	Metrics        string `json:"metrics,omitempty"` // the --metrics-addr
	// Error is set by `osimagefs status` when the mount's status could
	// not be read.
	Error string `json:"error,omitempty"`
}

// statusOf makes the root's status attribute from the metrics' totals and
// the bytes of the tree that are local (root is set once it exists).
func statusOf(ref, dir, metricsAddr string, tree *image.Tree, m *metrics.Metrics, root *atomic.Pointer[osfs.Root]) func() []byte {
	return func() []byte {
		t := m.Totals()
		s := mountStatus{
			Mountpoint: dir, Reference: ref, Digest: tree.Digest.String(), PID: os.Getpid(),
			FetchedBytes: t.FetchedBytes, ServedBytes: t.ServedBytes, Errors: t.ReadErrors,
			VerifyFailures: t.VerifyFailures, Retries: t.Retries, LastError: redact(t.LastError), Metrics: metricsAddr,
		}
		if r := root.Load(); r != nil {
			s.CachedBytes = r.CachedBytes()
		}
		b, _ := json.Marshal(s) // plain fields: cannot fail
		return b
	}
}

// storeOptionsObserved are opts with retries and each host's requests
// and bytes counted in m.
func storeOptionsObserved(opts blobstore.Options, m *metrics.Metrics) blobstore.Options {
	opts.OnRetry = m.Retried
	opts.Observer = m
	return opts
}

// CachedBytes passes the count of local bytes through to the blob, for
// the user.osimagefs.cached attribute.
func (t timeoutReader) CachedBytes() int64 { return t.b.CachedBytes() }
