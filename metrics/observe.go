package metrics

import (
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
)

var (
	_ lazy.Observer          = (*Metrics)(nil)
	_ fs.Observer            = (*Metrics)(nil)
	_ blobstore.HostObserver = (*Metrics)(nil)
)

// HostRequest counts a request to a registry host or mirror by outcome
// (blobstore.HostObserver).
func (m *Metrics) HostRequest(host, kind, outcome string) {
	m.hostRequests.WithLabelValues(host, kind, outcome).Inc()
}

// HostBytes counts blob bytes a host sent (blobstore.HostObserver).
func (m *Metrics) HostBytes(host, kind string, n int64) {
	m.hostBytes.WithLabelValues(host, kind).Add(float64(n))
}

// Lookup counts a reader's chunk lookup in a cache tier (lazy.Observer).
func (m *Metrics) Lookup(tier lazy.Tier, hit bool) {
	i := 0
	if tier == lazy.TierDisk {
		i = 1
	}
	if hit {
		m.cacheHits[i].Inc()
	} else {
		m.cacheMisses[i].Inc()
	}
}

// Fetched counts a chunk fetched from the registry (lazy.Observer).
func (m *Metrics) Fetched(d digest.Digest, bytes int64) {
	img := m.img.Load()
	m.fetchedBytes.WithLabelValues(img.registry, img.role(d)).Add(float64(bytes))
	m.totals.fetched.Add(bytes)
}

// Request counts one request for layer bytes and its time (lazy.Observer).
func (m *Metrics) Request(d digest.Digest, took time.Duration, err error) {
	img := m.img.Load()
	role := img.role(d)
	m.fetchRequests.WithLabelValues(img.registry, role).Inc()
	m.fetchDuration.WithLabelValues(img.registry).Observe(took.Seconds())
	if err != nil {
		m.fetchFailures.WithLabelValues(img.registry, role).Inc()
	}
}

// Ahead counts bytes sent for fetching ahead of readers (lazy.Observer).
func (m *Metrics) Ahead(d digest.Digest, why lazy.AheadKind, bytes int64) {
	role := m.img.Load().role(d)
	switch why {
	case lazy.AheadReadAhead:
		m.readAhead.WithLabelValues(role).Add(float64(bytes))
	case lazy.AheadFill:
		m.prefetch.WithLabelValues(role).Add(float64(bytes))
	case lazy.AheadReplay:
		m.replay.WithLabelValues(role).Add(float64(bytes))
	}
}

// VerifyFailed counts a failed check: of a piece, of a chunk read back
// from disk, or of a whole layer (lazy.Observer).
func (m *Metrics) VerifyFailed(d digest.Digest) {
	m.verifyFailures.Inc()
	m.totals.verifyFailures.Add(1)
}

// Served counts bytes served to a reader (fs.Observer).
func (m *Metrics) Served(f image.File, n int) {
	m.served.WithLabelValues(roleLabel(f.Role)).Add(float64(n))
	m.totals.served.Add(int64(n))
}

// ReadRequest counts a READ the daemon got (fs.Observer).
func (m *Metrics) ReadRequest(f image.File) {
	m.readRequests.WithLabelValues(roleLabel(f.Role)).Inc()
}

// PassthroughOpened counts an open handed to the kernel (fs.Observer).
func (m *Metrics) PassthroughOpened(f image.File) {
	m.passOpens.WithLabelValues(roleLabel(f.Role)).Inc()
}

// ReadFailed counts a read that failed with EIO, by cause (fs.Observer).
func (m *Metrics) ReadFailed(f image.File, err error) {
	m.eio.WithLabelValues(Cause(err)).Inc()
	m.totals.eio.Add(1)
	msg := err.Error()
	m.totals.lastError.Store(&msg)
}

// Retried counts a retry against registry (blobstore.Options.OnRetry).
func (m *Metrics) Retried(registry string, err error) {
	m.retries.WithLabelValues(registry).Inc()
	m.totals.retries.Add(1)
}
