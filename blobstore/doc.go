// Package blobstore talks to an OCI registry: it resolves a reference to
// the image's documents (index, manifests, configs) and reads byte ranges of
// blobs by digest, with HTTP Range GETs through go-containerregistry's
// authenticated transport.
//
// It knows nothing of chunks, caches or FUSE. Every call takes a context and
// is safe for concurrent use. Transient failures (connection errors, 5xx,
// 429, short or stalled bodies, a wrong Content-Range) are retried with
// exponential backoff and jitter until the context's deadline, honouring
// Retry-After; an attempt that receives nothing for its stall timeout is
// abandoned and retried, and a call gives up at once when its next attempt
// could only start after the deadline. A 401 makes the transport fetch a
// new bearer token and re-send; a blob GET redirected to storage that
// refuses the URL (an expired pre-signed URL) goes back to the registry for
// a fresh one. Errors that retrying cannot fix (not found, unauthorised,
// range not satisfiable) are returned at once, typed so callers can tell
// them apart with errors.Is.
//
// A server that answers a range request with the whole blob (200) is
// remembered for a while: ReadParts past byte 0 then fails at once with
// ErrRangeIgnored, and the caller reads the blob with StreamBlob instead
// (norange.go). Plain HTTP is refused on every request, redirects and
// go-containerregistry's own fall-back included, unless Options.PlainHTTP
// or, for a host of the hosts configuration, its http:// URL (plainhttp.go).
//
// A registry's hosts configuration (containerd's hosts.toml, read by
// hostsconf) adds mirrors: each host an endpoint with its own client, TLS
// settings and credentials (endpoint.go, hosts.go). Blob ranges, whole
// blobs and manifests by digest go to the mirrors that pull, tags to those
// that resolve, one attempt each, then to the origin with its retries
// (mirrorread.go). What each mirror does with each blob (serves ranges,
// is filling it, does not have it) and whether it answers at all is
// remembered in mirrors.go.
//
// Referrers is the one lookup of artifacts attached to a manifest (chunk
// tables, and whatever comes next): the OCI 1.1 referrers API, else its
// tag-schema fallback (referrers.go).
package blobstore
