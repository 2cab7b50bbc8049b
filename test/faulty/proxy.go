// Package faulty puts HTTP-level faults between a client and a real OCI
// registry, for tests of how the client copes: a streaming reverse proxy
// (Proxy) that can answer blob GETs with chosen faults (error statuses,
// Retry-After, connection resets, bodies cut short, stalled, too long or
// from the wrong place, Range ignored, redirects), can demand bearer tokens
// that expire, and logs every request it sees; and a second server
// (BlobHost) that plays the storage a registry redirects blob GETs to, with
// pre-signed URLs that can be refused as expired.
//
// Byte-level network faults (latency, slicing, TCP stalls) are the job of
// registrytest.Toxi; faulty works on HTTP messages. Everything listens on
// loopback only.
package faulty

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// Request is one request a Proxy or BlobHost saw, and what it answered.
type Request struct {
	Time          time.Time
	Method        string
	Path          string // without the query (pre-signed URLs carry credentials there)
	Range         string
	Authorization string
	// Status is the status sent, 0 when the connection was reset or nothing
	// was sent.
	Status int
	// Fault names the fault that served the request, "" when it was
	// forwarded as is.
	Fault string
}

// IsBlobGet reports whether r is a GET of /v2/<repo>/blobs/<digest>.
func (r Request) IsBlobGet() bool {
	_, _, ok := registrytest.ParseBlobPath(r.Path)
	return r.Method == http.MethodGet && ok
}

// Fault serves a blob GET in place of forwarding it. Serve returns the
// status it sent (0 for none).
type Fault struct {
	Name  string
	Serve func(p *Proxy, w http.ResponseWriter, r *http.Request) int
}

type rule struct {
	fault Fault
	left  int // requests still to serve; < 0 means until Clear
}

// Proxy is a streaming reverse proxy in front of a registry. Requests are
// forwarded unchanged unless a fault is injected (blob GETs only) or token
// auth is on. All methods are safe for concurrent use.
type Proxy struct {
	upstream *url.URL
	srv      *http.Server
	host     string
	rp       *httputil.ReverseProxy
	client   *http.Client
	release  chan struct{} // closed by Close: stalled handlers give up
	served   chan struct{}
	once     sync.Once

	mu       sync.Mutex
	rules    []*rule
	log      []Request
	logGen   int // bumped by ResetLog
	auth     *tokenAuth
	conns    map[net.Conn]struct{}
	maxConns int
}

// New starts a Proxy on 127.0.0.1:<free port> in front of the registry at
// upstreamHost ("host:port", plain HTTP), closed at the end of the test.
func New(t testing.TB, upstreamHost string) *Proxy {
	t.Helper()
	p, err := NewNoTest(upstreamHost)
	if err != nil {
		t.Fatalf("faulty: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewNoTest is New for programs without a testing.TB; call Close when done.
func NewNoTest(upstreamHost string) (*Proxy, error) {
	target, err := url.Parse("http://" + upstreamHost)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 64
	p := &Proxy{
		upstream: target,
		host:     ln.Addr().String(),
		client:   &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		release:  make(chan struct{}),
		served:   make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Authorization") // the registry behind has no auth
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState:         p.connState,
	}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Host is the proxy's "127.0.0.1:PORT".
func (p *Proxy) Host() string { return p.host }

// Close stops the proxy and releases stalled handlers.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.release)
		_ = p.srv.Close()
		<-p.served
	})
}

func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns[c] = struct{}{}
		p.maxConns = max(p.maxConns, len(p.conns))
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

// OpenConns is the number of client connections open now.
func (p *Proxy) OpenConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Inject makes the next n blob GETs be served by f (n <= 0: every blob GET
// until Clear). Faults injected earlier are used up first.
func (p *Proxy) Inject(n int, f Fault) {
	if n <= 0 {
		n = -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &rule{fault: f, left: n})
}

// Clear removes every injected fault.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Requests returns every request seen so far, in arrival order.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.log...)
}

// BlobGets returns the blob GETs seen so far, in arrival order.
func (p *Proxy) BlobGets() []Request {
	var out []Request
	for _, r := range p.Requests() {
		if r.IsBlobGet() {
			out = append(out, r)
		}
	}
	return out
}

// ResetLog forgets the requests seen so far.
func (p *Proxy) ResetLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
	p.logGen++
}

func (p *Proxy) next() (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.rules) > 0 {
		r := p.rules[0]
		if r.left == 0 {
			p.rules = p.rules[1:]
			continue
		}
		if r.left > 0 {
			r.left--
		}
		return r.fault, true
	}
	return Fault{}, false
}

// begin logs a request as it arrives; the status is filled in when sent.
func (p *Proxy) begin(r *http.Request, fault string) *statusWriter {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, gen := len(p.log), p.logGen
	p.log = append(p.log, newRequest(r, fault))
	return &statusWriter{onStatus: func(code int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.logGen == gen {
			p.log[i].Status = code
		}
	}}
}

func newRequest(r *http.Request, fault string) Request {
	return Request{
		Time: time.Now(), Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
		Authorization: r.Header.Get("Authorization"), Fault: fault,
	}
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == tokenPath {
		sw := p.begin(r, "token")
		sw.ResponseWriter = w
		p.serveToken(sw, r)
		return
	}
	if !p.allowed(r) {
		sw := p.begin(r, "unauthorized")
		sw.ResponseWriter = w
		p.challenge(sw, r)
		return
	}
	_, _, isBlob := registrytest.ParseBlobPath(r.URL.Path)
	if isBlob && r.Method == http.MethodGet {
		if f, ok := p.next(); ok {
			sw := p.begin(r, f.Name)
			sw.ResponseWriter = w
			f.Serve(p, sw, r)
			return
		}
	}
	sw := p.begin(r, "")
	sw.ResponseWriter = w
	p.rp.ServeHTTP(sw, r)
}

// Upstream sends r's method, path and query to the registry with the given
// Range header ("" for none) and returns its answer, unfollowed.
func (p *Proxy) Upstream(r *http.Request, rng string) (*http.Response, error) {
	u := *p.upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	return p.client.Do(req)
}

// statusWriter reports the status sent.
type statusWriter struct {
	http.ResponseWriter
	onStatus func(int)
	sent     bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.sent {
		w.sent = true
		w.onStatus(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Token auth.

const tokenPath = "/token"

type tokenAuth struct {
	uses    int            // requests a token is good for; 0: unlimited
	tokens  map[string]int // token -> requests left (-1: unlimited)
	issued  int
	refused int
}

// RequireToken makes the proxy demand "Authorization: Bearer <token>" on
// every /v2/ request, answering 401 with a WWW-Authenticate Bearer challenge
// whose realm is the proxy's own /token endpoint, which hands out tokens to
// anyone. A token is good for uses requests (0: until ExpireTokens).
func (p *Proxy) RequireToken(uses int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auth = &tokenAuth{uses: uses, tokens: map[string]int{}}
}

// ExpireTokens makes every token issued so far invalid.
func (p *Proxy) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.auth != nil {
		clear(p.auth.tokens)
	}
}

// TokenStats returns how many tokens were issued and how many requests
// were refused with 401.
func (p *Proxy) TokenStats() (issued, refused int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.auth == nil {
		return 0, 0
	}
	return p.auth.issued, p.auth.refused
}

func (p *Proxy) serveToken(w http.ResponseWriter, r *http.Request) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	p.mu.Lock()
	if p.auth == nil {
		p.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	left := p.auth.uses
	if left == 0 {
		left = -1
	}
	p.auth.tokens[tok] = left
	p.auth.issued++
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300, "issued_at": time.Now().UTC().Format(time.RFC3339)})
}

// allowed checks the bearer token when token auth is on, and uses it up.
func (p *Proxy) allowed(r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.auth
	if a == nil || !strings.HasPrefix(r.URL.Path, "/v2/") {
		return true
	}
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	left, valid := a.tokens[tok]
	if !found || !valid {
		a.refused++
		return false
	}
	switch {
	case left == 1:
		delete(a.tokens, tok)
	case left > 1:
		a.tokens[tok] = left - 1
	}
	return true
}

// challenge answers 401 with a Bearer challenge naming the token endpoint.
func (p *Proxy) challenge(w http.ResponseWriter, r *http.Request) {
	scope := ""
	if repo, _, isBlob := registrytest.ParseBlobPath(r.URL.Path); isBlob {
		scope = fmt.Sprintf(",scope=\"repository:%s:pull\"", repo)
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=\"http://%s%s\",service=\"faulty\"%s", p.host, tokenPath, scope))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
}
