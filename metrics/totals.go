package metrics

import "sync/atomic"

// totals are the sums `osimagefs status` shows, kept apart from the
// labelled series so that reading them needs no Prometheus.
type totals struct {
	fetched, served, eio, retries, verifyFailures atomic.Int64
	lastError                                     atomic.Pointer[string]
}

// Totals are a mount's sums since it started.
type Totals struct {
	FetchedBytes   int64  // layer bytes fetched from the registry
	ServedBytes    int64  // bytes served to readers
	ReadErrors     int64  // reads that failed with EIO
	Retries        int64  // retried attempts
	VerifyFailures int64  // layers that failed verification
	LastError      string // the error of the last failed read, if any
}

// Totals returns the sums so far.
func (m *Metrics) Totals() Totals {
	t := Totals{
		FetchedBytes:   m.totals.fetched.Load(),
		ServedBytes:    m.totals.served.Load(),
		ReadErrors:     m.totals.eio.Load(),
		Retries:        m.totals.retries.Load(),
		VerifyFailures: m.totals.verifyFailures.Load(),
	}
	if p := m.totals.lastError.Load(); p != nil {
		t.LastError = *p
	}
	return t
}
