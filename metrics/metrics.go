package metrics

import (
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/lazy"
)

// DiskUsage is the disk cache as the gauges see it; cache.Disk is one.
type DiskUsage interface {
	Used() int64
	Limit() int64
}

// Metrics are the counters of one mount process. Create it with New; it is
// safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	img atomic.Pointer[mounted]

	fetchedBytes   *prometheus.CounterVec
	fetchRequests  *prometheus.CounterVec
	fetchFailures  *prometheus.CounterVec
	fetchDuration  *prometheus.HistogramVec
	retries        *prometheus.CounterVec
	hostRequests   *prometheus.CounterVec
	hostBytes      *prometheus.CounterVec
	cacheHits      [2]prometheus.Counter // by tier: memory, disk
	cacheMisses    [2]prometheus.Counter
	served         *prometheus.CounterVec
	readRequests   *prometheus.CounterVec
	passOpens      *prometheus.CounterVec
	eio            *prometheus.CounterVec
	readAhead      *prometheus.CounterVec
	prefetch       *prometheus.CounterVec
	replay         *prometheus.CounterVec
	verifyFailures prometheus.Counter
	info           *prometheus.GaugeVec

	totals totals
}

// mounted is what labels need to know of the image: its registry host and
// the role of each blob.
type mounted struct {
	registry string
	roles    map[digest.Digest]string
}

// New makes the metrics of a mount process; disk, if not nil, is the disk
// cache whose bytes the gauges report at each scrape.
func New(disk DiskUsage) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.img.Store(&mounted{})
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "osimagefs", Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	m.fetchedBytes = counter("fetched_bytes_total", "Bytes of layers fetched from the registry.", "registry", "role")
	m.fetchRequests = counter("fetch_requests_total", "Requests for layer bytes (range requests and whole-blob streams), each counted once however many attempts it took.", "registry", "role")
	m.fetchFailures = counter("fetch_failures_total", "Requests for layer bytes that failed after their retries.", "registry", "role")
	m.retries = counter("fetch_retries_total", "Attempts retried after a transient failure (any request to the registry).", "registry")
	m.hostRequests = counter("host_requests_total", "Requests to each host (the origin registry, and each mirror), by outcome: ok, error, filling (a mirror answered a range with the whole blob: it is filling it, and the next host serves it meanwhile), missing (a mirror does not have it), corrupt (bytes a mirror sent failed their check).", "host", "kind", "outcome")
	m.hostBytes = counter("host_bytes_total", "Blob bytes each host (the origin registry, or a mirror) sent.", "host", "kind")
	m.served = counter("served_bytes_total", "Bytes served to readers through FUSE (reads the kernel's page cache answers are not seen).", "role")
	m.readRequests = counter("read_requests_total", "FUSE READ requests the daemon served (none come for files the kernel reads itself by passthrough).", "role")
	m.passOpens = counter("passthrough_opens_total", "Opens of layers handed to the kernel, which reads them straight from the disk cache (FUSE passthrough).", "role")
	m.eio = counter("eio_total", "Reads that failed with EIO, by cause.", "cause")
	m.readAhead = counter("readahead_bytes_total", "Layer bytes sent for fetching ahead of a sequential reader.", "role")
	m.prefetch = counter("prefetch_bytes_total", "Layer bytes sent for fetching by --prefetch.", "role")
	m.replay = counter("profile_replay_bytes_total", "Layer bytes sent for fetching by the replay of a boot profile (--prefetch auto).", "role")
	hits := counter("cache_hits_total", "Chunk lookups of readers answered by a cache tier.", "cache")
	misses := counter("cache_misses_total", "Chunk lookups of readers a cache tier could not answer.", "cache")
	for i, tier := range []lazy.Tier{lazy.TierMemory, lazy.TierDisk} {
		m.cacheHits[i] = hits.WithLabelValues(string(tier))
		m.cacheMisses[i] = misses.WithLabelValues(string(tier))
	}
	for _, c := range causes {
		m.eio.WithLabelValues(c)
	}
	m.verifyFailures = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "osimagefs", Name: "verify_failures_total",
		Help: "Checks that failed: fetched pieces, chunks read back from the disk cache, and layers complete in the disk cache that did not match their digest."})
	m.fetchDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "osimagefs", Name: "fetch_duration_seconds",
		Help:    "Time of one request for layer bytes, from when it had a request slot to its last byte or failure.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"registry"})
	m.info = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "osimagefs", Name: "mount_info",
		Help: "1 for the image this process serves."}, []string{"registry", "repository", "digest"})
	m.reg.MustRegister(m.verifyFailures, m.fetchDuration, m.info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if disk != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "osimagefs", Name: "disk_cache_bytes",
				Help: "Bytes of chunks in the disk cache."}, func() float64 { return float64(disk.Used()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "osimagefs", Name: "disk_cache_limit_bytes",
				Help: "Most bytes the disk cache holds (--cache-size)."}, func() float64 { return float64(disk.Limit()) }))
	}
	return m
}

// Registry is the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetImage names the image being served: its registry host (no
// credentials: host and port) and repository, and its tree, whose layers
// give the role label of each blob. Call it before the first fetch.
func (m *Metrics) SetImage(registry, repository string, tree *image.Tree) {
	img := &mounted{registry: registry, roles: map[digest.Digest]string{}}
	for _, f := range tree.Files {
		if !f.Lazy() {
			continue
		}
		r := roleLabel(f.Role)
		if _, ok := img.roles[f.Digest]; !ok {
			img.roles[f.Digest] = r
		}
		// Every series the tree can have starts at 0, so that rates and
		// sums over them are defined from the first scrape.
		m.fetchedBytes.WithLabelValues(registry, r)
		m.fetchRequests.WithLabelValues(registry, r)
		m.fetchFailures.WithLabelValues(registry, r)
		m.served.WithLabelValues(r)
		m.readRequests.WithLabelValues(r)
		m.passOpens.WithLabelValues(r)
		m.readAhead.WithLabelValues(r)
		m.prefetch.WithLabelValues(r)
		m.replay.WithLabelValues(r)
	}
	m.retries.WithLabelValues(registry)
	m.info.WithLabelValues(registry, repository, tree.Digest.String()).Set(1)
	m.img.Store(img)
}

// role is the role label of blob d.
func (i *mounted) role(d digest.Digest) string {
	if r, ok := i.roles[d]; ok {
		return r
	}
	return roleOther
}

// roleOther is the role label of whatever has none of its own.
const roleOther = "other"

// roleLabel is the label of a layer role: its name, or "other".
func roleLabel(r image.Role) string {
	switch r {
	case image.RoleDisk, image.RoleKernel, image.RoleInitramfs, image.RoleSquashfs,
		image.RoleCmdline, image.RoleUKI, image.RoleISO:
		return string(r)
	}
	return roleOther
}
