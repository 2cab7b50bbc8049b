package registrytest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"

	// Register the htpasswd access controller with the auth factory.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
)

// SecureOptions configure StartSecure. The zero value is a plain-HTTP,
// anonymous registry on 127.0.0.1 (like Start).
type SecureOptions struct {
	// Dir is the root of the filesystem storage; "" means a fresh
	// t.TempDir(). Pointing it at another registry's Dir serves the same
	// repositories, so images can be pushed to an anonymous plain-HTTP
	// Registry with the push helpers and read through this one.
	Dir string
	// TLS serves HTTPS only, with a server certificate signed by a fresh
	// test CA (see CA) for the bind IP, 127.0.0.1, ::1 and localhost.
	TLS bool
	// IP is the address to listen on (port chosen by the kernel). ""
	// means 127.0.0.2 with TLS and 127.0.0.1 without. go-containerregistry
	// falls back to plain HTTP for 127.0.0.1, localhost, *.localhost and
	// RFC 1918 addresses when HTTPS fails (osimagefs refuses that without
	// --plain-http), but never for other loopback addresses such as
	// 127.0.0.2: a TLS registry there is reached over TLS only, without
	// touching /etc/hosts.
	IP string
	// Users turns on htpasswd basic auth (Distribution's "htpasswd" access
	// controller, realm "registrytest") with these user -> password pairs,
	// stored bcrypt-hashed. Empty means anonymous access.
	Users map[string]string
}

// SecureRegistry is a real CNCF Distribution registry served in-process with
// TLS and/or htpasswd basic auth (see SecureOptions). Start it with
// StartSecure.
type SecureRegistry struct {
	host     string
	dir      string
	tls      bool
	ca       *CA
	htpasswd string

	srv    *http.Server
	app    *handlers.App
	served chan struct{}
	once   sync.Once

	requests    atomic.Int64 // requests that reached the registry's handler
	tlsRequests atomic.Int64 // of those, requests that came over TLS
	authorized  atomic.Int64 // of those, requests that carried an Authorization header
	badConns    atomic.Int64 // connections refused before reaching the handler (TLS handshake errors, HTTP on the HTTPS port)
}

// StartSecure starts a registry as o says, waits until GET /v2/ answers
// (200, or 401 with auth) and registers t.Cleanup to shut it down.
func StartSecure(t testing.TB, o SecureOptions) *SecureRegistry {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	r, err := StartSecureNoTest(context.Background(), o, t.TempDir())
	if err != nil {
		t.Fatalf("registrytest: start secure registry: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// StartSecureNoTest is StartSecure for programs without a testing.TB. The
// CA, the server key and the htpasswd file are written to work, which must
// exist; o.Dir must be set. Call Close when done.
func StartSecureNoTest(ctx context.Context, o SecureOptions, work string) (*SecureRegistry, error) {
	quietLogging()
	if o.Dir == "" {
		return nil, errors.New("SecureOptions.Dir must be set")
	}
	ip := o.IP
	if ip == "" {
		ip = "127.0.0.1"
		if o.TLS {
			ip = "127.0.0.2"
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", ip, err)
	}
	r := &SecureRegistry{host: ln.Addr().String(), dir: o.Dir, tls: o.TLS}

	cfg := newConfig(o.Dir, r.host, randomSecret())
	if len(o.Users) > 0 {
		r.htpasswd = filepath.Join(work, "htpasswd")
		if err := WriteHtpasswd(r.htpasswd, o.Users); err != nil {
			ln.Close()
			return nil, err
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "registrytest", "path": r.htpasswd}}
	}
	if o.TLS {
		r.ca, err = NewCA(work)
		if err != nil {
			ln.Close()
			return nil, err
		}
		cert, err := r.ca.ServerCertificate(ip, "127.0.0.1", "::1", "localhost")
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}

	app, err := newApp(context.Background(), cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	r.app = app
	r.srv = &http.Server{
		Handler:           http.HandlerFunc(r.serveHTTP),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(lineCounter{&r.badConns}, "", 0),
	}
	r.served = make(chan struct{})
	go func() {
		defer close(r.served)
		_ = r.srv.Serve(ln)
	}()
	if err := r.waitReady(ctx); err != nil {
		r.Close()
		return nil, err
	}
	// Readiness probes are not what a test wants to count.
	r.requests.Store(0)
	r.tlsRequests.Store(0)
	r.authorized.Store(0)
	r.badConns.Store(0)
	return r, nil
}

func (r *SecureRegistry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	if req.TLS != nil {
		r.tlsRequests.Add(1)
	}
	if req.Header.Get("Authorization") != "" {
		r.authorized.Add(1)
	}
	r.app.ServeHTTP(w, req)
}

// lineCounter counts the lines net/http's server logs: TLS handshake
// errors and the like, i.e. connections refused before the handler.
type lineCounter struct{ n *atomic.Int64 }

func (c lineCounter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return len(p), nil
}

// Host returns "IP:PORT", the registry part of references.
func (r *SecureRegistry) Host() string { return r.host }

// Dir returns the root of the registry's storage.
func (r *SecureRegistry) Dir() string { return r.dir }

// CA returns the test CA that signed the server certificate, or nil
// without TLS.
func (r *SecureRegistry) CA() *CA { return r.ca }

// HtpasswdFile is the path of the htpasswd file ("" without auth).
// Rewrite it (WriteHtpasswd) to change the users while the registry runs:
// Distribution reloads it when its modification time changes.
func (r *SecureRegistry) HtpasswdFile() string { return r.htpasswd }

// Requests is the number of requests that reached the registry, how many
// of them came over TLS, and how many carried an Authorization header.
func (r *SecureRegistry) Requests() (all, overTLS, authorized int64) {
	return r.requests.Load(), r.tlsRequests.Load(), r.authorized.Load()
}

// RefusedConnections is the number of connections the HTTP server gave
// up on before any request reached the registry: failed TLS handshakes
// (a client that does not trust the CA) and plain HTTP sent to the HTTPS
// port.
func (r *SecureRegistry) RefusedConnections() int64 { return r.badConns.Load() }

// Close stops the registry; StartSecure registers it with t.Cleanup.
func (r *SecureRegistry) Close() {
	r.once.Do(func() {
		_ = r.srv.Close()
		<-r.served
		_ = r.app.Shutdown()
	})
}

// waitReady polls GET /v2/ until the registry answers 200 or, with auth,
// 401.
func (r *SecureRegistry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := &http.Transport{Proxy: nil}
	scheme := "http"
	if r.tls {
		scheme = "https"
		t.TLSClientConfig = &tls.Config{RootCAs: r.ca.Pool(), MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: t, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	url := scheme + "://" + r.host + "/v2/"
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (r.htpasswd != "" && resp.StatusCode == http.StatusUnauthorized) {
				return nil
			}
			err = fmt.Errorf("GET %s: status %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry at %s not ready: %w (last error: %v)", r.host, ctx.Err(), last)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TLSClientConfig trusts the registry's CA (nil without TLS).
func (r *SecureRegistry) TLSClientConfig() *tls.Config {
	if r.ca == nil {
		return nil
	}
	return &tls.Config{RootCAs: r.ca.Pool(), MinVersion: tls.VersionTLS12}
}
