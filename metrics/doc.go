// Package metrics counts what a mount does and serves it to Prometheus.
// It is the one package that knows Prometheus: it implements the data
// path's observer hooks (lazy.Observer, fs.Observer, blobstore's OnRetry)
// with counters on its own registry, next to the Go and process
// collectors, and keeps the totals that `osimagefs status` shows.
//
// Labels carry registry hosts, layer roles, cache tiers and error causes
// only: never a URL, a reference with credentials, or a token.
package metrics
