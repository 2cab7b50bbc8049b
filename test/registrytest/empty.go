package registrytest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// Empty is a plain-HTTP registry on 127.0.0.1 that holds nothing: it
// answers the API check (/v2/) and 404 to everything else, and counts the
// requests that reach it, to show whether a client talked to it at all.
type Empty struct {
	Requests atomic.Int64
	srv      *httptest.Server
}

// StartEmpty starts an Empty registry, stopped when the test ends.
func StartEmpty(t testing.TB) *Empty {
	t.Helper()
	e := &Empty{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.Requests.Add(1)
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// Host is the registry's "127.0.0.1:PORT".
func (e *Empty) Host() string { return strings.TrimPrefix(e.srv.URL, "http://") }
