package registrytest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Counter is a streaming reverse proxy in front of a registry that counts
// blob traffic. Every request is forwarded; requests whose path is
// /v2/<repo>/blobs/<digest> (any method, so HEADs count as requests with 0
// bytes) are counted per digest and in total, together with the number of
// response body bytes actually written to the client and the Range header
// of each request. Byte counts grow while a body is streaming, and a client
// that hangs up early is only charged for what was written.
//
// The proxy keeps the client's Host header, so absolute URLs the registry
// builds (upload Locations) point back at the proxy. When the upstream is
// down the proxy answers 502 Bad Gateway.
//
// All methods are safe for concurrent use.
type Counter struct {
	addr      string
	srv       *http.Server
	transport *http.Transport
	served    chan struct{}
	closeOnce sync.Once

	requests  atomic.Int64 // all proxied requests
	blobReqs  atomic.Int64
	blobBytes atomic.Int64

	mu      sync.Mutex
	digests map[string]*digestStats
}

type digestStats struct {
	requests atomic.Int64
	bytes    atomic.Int64
	mu       sync.Mutex // guards ranges and agents
	ranges   []string
	agents   map[string]*atomic.Int64 // bytes by the client's product (User-Agent up to "/")
}

// NewCountingProxy starts a counting proxy on 127.0.0.1:<free port>
// forwarding to upstreamHost ("host:port", plain HTTP) and registers
// t.Cleanup to close it.
func NewCountingProxy(t testing.TB, upstreamHost string) *Counter {
	t.Helper()
	c, err := NewCountingProxyNoTest(upstreamHost)
	if err != nil {
		t.Fatalf("registrytest: counting proxy: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// NewCountingProxyNoTest is NewCountingProxy for programs without a
// testing.TB; call Close when done.
func NewCountingProxyNoTest(upstreamHost string) (*Counter, error) {
	target, err := url.Parse("http://" + upstreamHost)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", upstreamHost, err)
	}
	ln, err := listenFree()
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // never route loopback traffic via $HTTP_PROXY
	transport.MaxIdleConnsPerHost = 64

	c := &Counter{
		addr:      ln.Addr().String(),
		transport: transport,
		served:    make(chan struct{}),
		digests:   make(map[string]*digestStats),
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // flush after every write: stream, never buffer
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	c.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(rp, w, r) }),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(c.served)
		_ = c.srv.Serve(ln)
	}()
	return c, nil
}

func (c *Counter) serve(rp *httputil.ReverseProxy, w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	_, dgst, ok := ParseBlobPath(r.URL.Path)
	if !ok {
		rp.ServeHTTP(w, r)
		return
	}
	st := c.stats(dgst)
	c.blobReqs.Add(1)
	st.requests.Add(1)
	st.mu.Lock()
	st.ranges = append(st.ranges, r.Header.Get("Range"))
	product := r.UserAgent()
	if i := strings.IndexAny(product, "/ "); i >= 0 {
		product = product[:i]
	}
	if st.agents == nil {
		st.agents = map[string]*atomic.Int64{}
	}
	agent := st.agents[product]
	if agent == nil {
		agent = &atomic.Int64{}
		st.agents[product] = agent
	}
	st.mu.Unlock()
	rp.ServeHTTP(&countingWriter{ResponseWriter: w, total: &c.blobBytes, digest: &st.bytes, agent: agent}, r)
}

func (c *Counter) stats(dgst string) *digestStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.digests[dgst]
	if st == nil {
		st = &digestStats{}
		c.digests[dgst] = st
	}
	return st
}

func (c *Counter) lookup(dgst string) *digestStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.digests[dgst]
}

// Host returns the proxy's "127.0.0.1:PORT".
func (c *Counter) Host() string { return c.addr }

// Requests returns the number of requests proxied, blob or not.
func (c *Counter) Requests() int64 { return c.requests.Load() }

// BlobBytes returns the blob response body bytes sent to clients, all
// digests together.
func (c *Counter) BlobBytes() int64 { return c.blobBytes.Load() }

// BlobRequests returns the number of blob requests, all digests together.
func (c *Counter) BlobRequests() int64 { return c.blobReqs.Load() }

// BytesFor returns the response body bytes sent for blob digest
// ("sha256:...").
func (c *Counter) BytesFor(digest string) int64 {
	if st := c.lookup(digest); st != nil {
		return st.bytes.Load()
	}
	return 0
}

// RequestsFor returns the number of requests for blob digest.
func (c *Counter) RequestsFor(digest string) int64 {
	if st := c.lookup(digest); st != nil {
		return st.requests.Load()
	}
	return 0
}

// BytesForAgent is the body bytes written for blob digest to clients
// whose User-Agent starts with product, up to a "/" or a space
// (osimagefs's starts "osimagefs "; a mirror's is another).
func (c *Counter) BytesForAgent(digest, product string) int64 {
	st := c.lookup(digest)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if a := st.agents[product]; a != nil {
		return a.Load()
	}
	return 0
}

// Agents are the client products that fetched blob digest.
func (c *Counter) Agents(digest string) []string {
	st := c.lookup(digest)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for a := range st.agents {
		out = append(out, a)
	}
	return out
}

// Ranges returns the Range header of each request for blob digest, in
// arrival order; "" stands for a request without a Range header (a
// whole-blob fetch).
func (c *Counter) Ranges(digest string) []string {
	st := c.lookup(digest)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]string(nil), st.ranges...)
}

// Reset zeroes all counters and forgets the recorded ranges. Bytes of
// responses still streaming at the time of the call are counted from zero
// on.
func (c *Counter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.digests {
		st.requests.Store(0)
		st.bytes.Store(0)
		st.mu.Lock()
		st.ranges = nil
		st.agents = nil
		st.mu.Unlock()
	}
	c.requests.Store(0)
	c.blobReqs.Store(0)
	c.blobBytes.Store(0)
}

// Close stops the proxy, closing its listener and all connections.
func (c *Counter) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.srv.Close()
		<-c.served
		c.transport.CloseIdleConnections()
	})
	return err
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	total  *atomic.Int64
	digest *atomic.Int64
	agent  *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.total.Add(int64(n))
	w.digest.Add(int64(n))
	w.agent.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController (used by ReverseProxy to flush) reach
// the underlying writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
