package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// endpoint is one host the Store sends requests to: the origin registry,
// or a mirror from the hosts configuration. Its HTTP client carries its
// own TLS settings and credentials, so nothing of one host's is ever sent
// to another.
type endpoint struct {
	host    string      // host[:port], in logs, errors and metrics
	mirror  bool        // a mirror, not the origin
	root    string      // scheme://host + API root ("/v2"), no trailing slash
	query   string      // added to every URL of a mirror ("ns=<registry>")
	header  http.Header // sent with every request to the host (hosts.toml header; see withHeaders)
	pull    bool        // blobs, and manifests by digest, may be fetched here
	resolve bool        // tags may be resolved here

	// connect builds the authenticated client (it may contact the host, to
	// learn how it wants to be authenticated).
	connect func(ctx context.Context) (*http.Client, error)

	mu         sync.Mutex // guards the fields below
	client     *http.Client
	connecting *connectCall // the connect in flight, if any
	connectErr error        // why the last connect failed
	retryAt    time.Time    // no new connect before then

	health        health      // mirrors: whether it answers at all
	blobs         mirrorBlobs // mirrors: what it does with each blob
	refusedWarned atomic.Bool // mirrors: a 401 or 403 was warned about
}

// connectBackoff is how long a failed connect is remembered before the
// next request tries again; connectTimeout bounds one connect.
const (
	connectBackoff = 2 * time.Second
	connectTimeout = 30 * time.Second
)

// connectCall is one connect in flight; done is closed when it ends.
type connectCall struct {
	done   chan struct{}
	client *http.Client
	err    error
}

// httpClient is the endpoint's client, connecting on first use. The
// connect runs once for all the requests that wait for it, on its own
// context (a request that gives up does not fail the others), bounded by
// connectTimeout. A failed connect is remembered for connectBackoff, so
// that requests in that time fail at once (and go to the next host).
func (e *endpoint) httpClient(ctx context.Context) (*http.Client, error) {
	e.mu.Lock()
	if e.client != nil {
		c := e.client
		e.mu.Unlock()
		return c, nil
	}
	if e.connectErr != nil && time.Now().Before(e.retryAt) {
		err := e.connectErr
		e.mu.Unlock()
		return nil, err
	}
	call := e.connecting
	if call == nil {
		call = &connectCall{done: make(chan struct{})}
		e.connecting = call
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
		go func() {
			defer cancel()
			c, err := e.connect(cctx)
			e.mu.Lock()
			if err != nil {
				err = fmt.Errorf("connect to %s: %w", e.host, classify(err))
				e.connectErr, e.retryAt = err, time.Now().Add(connectBackoff)
			} else {
				e.client, e.connectErr = c, nil
			}
			e.connecting = nil
			call.client, call.err = c, err
			e.mu.Unlock()
			close(call.done)
		}()
	}
	e.mu.Unlock()
	select {
	case <-call.done:
		return call.client, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// url is the URL of kind ("blobs", "manifests", "referrers") id of
// repository repo on this host, with the mirror's query.
func (e *endpoint) url(repo, kind, id string) string {
	return e.withQuery(e.root+"/"+repo+"/"+kind+"/"+id, nil)
}

// withQuery is u, which has no query, with the endpoint's query and extra.
func (e *endpoint) withQuery(u string, extra url.Values) string {
	q := extra.Encode()
	switch {
	case e.query != "" && q != "":
		q = e.query + "&" + q
	case e.query != "":
		q = e.query
	}
	if q == "" {
		return u
	}
	return u + "?" + q
}

// get sends a GET with extra headers through the endpoint's client.
func (e *endpoint) get(ctx context.Context, u string, h http.Header) (*http.Response, error) {
	client, err := e.httpClient(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		if pe := (*PlainHTTPError)(nil); errors.As(err, &pe) {
			return nil, pe // it names both URLs without their queries; the *url.Error would show a pre-signed query
		}
		return nil, classify(err)
	}
	return resp, nil
}

// kind is "mirror" or "origin", the metrics' label.
func (e *endpoint) kind() string {
	if e.mirror {
		return "mirror"
	}
	return "origin"
}

// withHeaders is next sending header with every request to host: the
// registry's own requests included (its ping), never a token server's or
// a redirect target's.
func withHeaders(next http.RoundTripper, host string, header http.Header) http.RoundTripper {
	if len(header) == 0 {
		return next
	}
	return hostHeaders{next: next, host: host, header: header}
}

// hostHeaders is withHeaders' transport.
type hostHeaders struct {
	next   http.RoundTripper
	host   string
	header http.Header
}

// RoundTrip adds the headers to a request to the host.
func (t hostHeaders) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	for k, v := range t.header {
		req.Header[k] = v
	}
	return t.next.RoundTrip(req)
}
