package blobstore

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// downgrading is an HTTPS registry that redirects every manifest and blob
// GET to plain-HTTP storage on another port, as a misconfigured proxy or a
// hostile registry may. A real registry cannot be made to do this on
// demand, hence the fake.
type downgrading struct {
	tls, plain *httptest.Server
	redirects  atomic.Int64 // GETs the HTTPS side redirected
	plainGets  atomic.Int64 // requests that reached the plain-HTTP side
	blob       []byte
	manifest   []byte
}

const downgradeSecret = "sig=SECRET"

func newDowngrading(t *testing.T) *downgrading {
	t.Helper()
	d := &downgrading{blob: fixture.RandomBytes(7, 64<<10), manifest: []byte(`{"schemaVersion":2}`)}
	d.plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.plainGets.Add(1)
		body := d.blob
		if r.URL.Path == "/manifest" {
			body = d.manifest
			w.Header().Set("Content-Type", image.MediaTypeOCIManifest)
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(d.plain.Close)
	d.tls = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.Contains(r.URL.Path, "/manifests/"):
			d.redirects.Add(1)
			http.Redirect(w, r, d.plain.URL+"/manifest?"+downgradeSecret, http.StatusTemporaryRedirect)
		case strings.Contains(r.URL.Path, "/blobs/"):
			d.redirects.Add(1)
			http.Redirect(w, r, d.plain.URL+"/blob?"+downgradeSecret, http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(d.tls.Close)
	return d
}

// TestPlainHTTPRedirectRefused: an HTTPS registry that redirects a blob
// or manifest GET to plain HTTP is refused, at once, with an error naming
// both URLs (without the pre-signed query) and --plain-http, and nothing
// reaches the plain-HTTP host. With PlainHTTP the same redirects are
// followed.
func TestPlainHTTPRedirectRefused(t *testing.T) {
	d := newDowngrading(t)
	blob := digest.FromBytes(d.blob)
	fetches := []struct {
		name    string
		storage string // the path the registry redirects to
		run     func(context.Context, *Store) error
	}{
		{"range of a blob", "/blob", func(ctx context.Context, s *Store) error {
			return readRange(ctx, s, blob, make([]byte, 1000), 10)
		}},
		{"whole blob", "/blob", func(ctx context.Context, s *Store) error {
			_, err := s.Blob(ctx, ocispec.Descriptor{Digest: blob, Size: int64(len(d.blob))})
			return err
		}},
		{"manifest", "/manifest", func(ctx context.Context, s *Store) error {
			_, _, err := s.Manifest(ctx, ocispec.Descriptor{Digest: digest.FromBytes(d.manifest)})
			return err
		}},
	}
	for _, plainHTTP := range []bool{false, true} {
		opts := Options{Transport: d.tls.Client().Transport, PlainHTTP: plainHTTP}
		s, err := Open(t.Context(), d.tls.Listener.Addr().String()+"/os/downgrade:any", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fetches {
			name := f.name
			if plainHTTP {
				name += " with PlainHTTP"
			}
			t.Run(name, func(t *testing.T) {
				d.redirects.Store(0)
				d.plainGets.Store(0)
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				err := f.run(ctx, s)
				if plainHTTP {
					if err != nil || d.plainGets.Load() == 0 {
						t.Fatalf("err = %v after %d requests to the plain-HTTP host; want the redirect followed", err, d.plainGets.Load())
					}
					return
				}
				var pe *PlainHTTPError
				if !errors.Is(err, ErrPlainHTTP) || !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a refused plain-HTTP redirect", err)
				}
				if !strings.HasPrefix(pe.From, "https://"+d.tls.Listener.Addr().String()+"/v2/os/downgrade/") ||
					pe.URL != d.plain.URL+f.storage {
					t.Errorf("refusal names %q -> %q, want the registry's HTTPS URL -> the plain-HTTP one", pe.From, pe.URL)
				}
				t.Logf("refused: %v", err)
				msg := err.Error()
				if !strings.Contains(msg, "refused redirect") || !strings.Contains(msg, "--plain-http") || strings.Contains(msg, downgradeSecret) {
					t.Errorf("message %q must name the refused redirect and --plain-http, without the URL's query", msg)
				}
				if n := d.plainGets.Load(); n != 0 {
					t.Errorf("%d requests reached the plain-HTTP host", n)
				}
				if n := d.redirects.Load(); n != 1 {
					t.Errorf("the registry was asked %d times; a refused downgrade is not retried", n)
				}
			})
		}
	}
}

// TestPlainHTTPNoFallbackOnLoopback: go-containerregistry falls back to
// plain HTTP for loopback names (127.0.0.1, localhost) when HTTPS fails.
// Without PlainHTTP a plain-HTTP registry there is not reached at all (the
// HTTPS attempt fails at the TLS handshake, before any request); with it,
// it is.
func TestPlainHTTPNoFallbackOnLoopback(t *testing.T) {
	reg := registrytest.StartEmpty(t)
	requests := &reg.Requests
	_, port, _ := strings.Cut(reg.Host(), ":")
	for _, host := range []string{reg.Host(), "localhost:" + port} {
		t.Run(host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			requests.Store(0)
			_, err := Open(ctx, host+"/os/plain:any", Options{})
			if !errors.Is(err, ErrPlainHTTP) || !strings.Contains(err.Error(), "--plain-http") {
				t.Errorf("Open without PlainHTTP: err = %v, want a refused plain-HTTP request naming --plain-http", err)
			}
			t.Logf("refused: %v", err)
			if n := requests.Load(); n != 0 {
				t.Errorf("%d requests reached the plain-HTTP registry without PlainHTTP", n)
			}

			if _, err := Open(ctx, host+"/os/plain:any", Options{PlainHTTP: true}); err != nil {
				t.Fatalf("Open with PlainHTTP: %v", err)
			}
			if requests.Load() == 0 {
				t.Error("no request reached the registry with PlainHTTP")
			}
		})
	}
}
