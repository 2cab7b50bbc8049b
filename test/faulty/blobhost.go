package faulty

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

// BlobHost plays the storage a registry redirects blob GETs to (S3, GCS, a
// CDN): it serves GET /blobs/<repo>/<digest>?sig=... by fetching the blob
// from the registry with the request's Range header and streaming the
// answer. URLs are "pre-signed": RefuseNext makes it answer 403 as for an
// expired signature. It logs every request with its Range and
// Authorization headers. All methods are safe for concurrent use.
type BlobHost struct {
	registry string
	host     string
	srv      *http.Server
	client   *http.Client
	served   chan struct{}
	once     sync.Once

	mu     sync.Mutex
	refuse int
	log    []Request
}

// NewBlobHost starts a BlobHost listening on addr ("127.0.0.2:0" gives a
// different host from a registry on 127.0.0.1) that reads blobs from the
// registry at registryHost, closed at the end of the test.
func NewBlobHost(t testing.TB, addr, registryHost string) *BlobHost {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("faulty: blob host: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	b := &BlobHost{registry: registryHost, host: ln.Addr().String(), client: &http.Client{Transport: tr}, served: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		defer close(b.served)
		_ = b.srv.Serve(ln)
	}()
	t.Cleanup(b.Close)
	return b
}

// Host is the blob host's "IP:PORT".
func (b *BlobHost) Host() string { return b.host }

// Close stops the blob host.
func (b *BlobHost) Close() {
	b.once.Do(func() {
		_ = b.srv.Close()
		<-b.served
	})
}

// URL is a fresh pre-signed URL of blob digest of repo on this host: the
// Location a Proxy's Redirect fault can send.
func (b *BlobHost) URL(repo, digest string) string {
	sig := make([]byte, 16)
	_, _ = rand.Read(sig)
	return fmt.Sprintf("http://%s/blobs/%s/%s?sig=%s", b.host, repo, digest, hex.EncodeToString(sig))
}

// Redirect is the Proxy fault that sends blob GETs here.
func (b *BlobHost) Redirect() Fault {
	return Redirect(func(r *http.Request) string {
		repo, dgst, _ := registrytest.ParseBlobPath(r.URL.Path)
		return b.URL(repo, dgst)
	})
}

// RefuseNext makes the next n requests get 403 Forbidden, as an expired
// pre-signed URL does.
func (b *BlobHost) RefuseNext(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refuse = n
}

// Requests returns every request seen, in arrival order.
func (b *BlobHost) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.log...)
}

func (b *BlobHost) serve(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	i := len(b.log)
	b.log = append(b.log, newRequest(r, ""))
	sw := &statusWriter{ResponseWriter: w, onStatus: func(code int) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.log[i].Status = code
	}}
	refuse := b.refuse > 0
	if refuse {
		b.refuse--
	}
	b.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	slash := strings.LastIndex(rest, "/")
	if !ok || slash < 0 || r.URL.Query().Get("sig") == "" {
		http.NotFound(sw, r)
		return
	}
	if refuse {
		sw.Header().Set("Content-Type", "application/xml")
		sw.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(sw, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", b.registry, rest[:slash], rest[slash+1:]), nil)
	if err != nil {
		sw.WriteHeader(http.StatusBadRequest)
		return
	}
	if rng := r.Header.Get("Range"); rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		sw.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Length", "Content-Range", "Content-Type", "Accept-Ranges", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			sw.Header().Set(h, v)
		}
	}
	sw.WriteHeader(resp.StatusCode)
	_, _ = copyFlush(sw, resp.Body)
}
