package blobstore

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ErrPlainHTTP: a request would have gone over plain HTTP, and plain HTTP
// was not allowed (Options.PlainHTTP, the --plain-http flag). Every
// *PlainHTTPError is one. Retrying cannot help.
var ErrPlainHTTP = errors.New("plain HTTP refused")

// PlainHTTPError is a request refused because it would have gone over plain
// HTTP: a redirect from HTTPS to HTTP, or go-containerregistry falling back
// to HTTP for a loopback or private address (localhost, 127.0.0.1, ::1,
// RFC 1918) when HTTPS fails or is slow to answer.
type PlainHTTPError struct {
	// URL is where the request would have gone, without its query (a
	// pre-signed URL's query is a credential).
	URL string
	// From is the HTTPS URL that redirected to URL (without its query), or
	// "" if the request was not a redirect.
	From string
}

func (e *PlainHTTPError) Error() string {
	if e.From != "" {
		return fmt.Sprintf("refused redirect from %s to plain HTTP %s (a downgrade from HTTPS; --plain-http allows it)", e.From, e.URL)
	}
	return fmt.Sprintf("refused plain HTTP request to %s (HTTPS is required; --plain-http allows plain HTTP)", e.URL)
}

// Is makes every PlainHTTPError an ErrPlainHTTP.
func (e *PlainHTTPError) Is(target error) bool { return target == ErrPlainHTTP }

// GuardPlainHTTP returns next, refusing every request that is not HTTPS with
// a *PlainHTTPError before it is sent, unless plainHTTP. Every transport
// osimagefs talks to a registry through is wrapped in it, at the bottom:
// so it sees each request go-containerregistry makes (the ping and its
// fall-back to HTTP, token fetches) and each redirect followed, whoever
// built the http.Client.
func GuardPlainHTTP(next http.RoundTripper, plainHTTP bool) http.RoundTripper {
	if plainHTTP {
		return next
	}
	return httpsOnly{next: next}
}

// httpsOnly is the transport GuardPlainHTTP returns.
type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" {
		return t.next.RoundTrip(req)
	}
	if req.Body != nil {
		_ = req.Body.Close() // a RoundTripper closes the body, even on error
	}
	e := &PlainHTTPError{URL: withoutQuery(req.URL)}
	if prev := req.Response; prev != nil && prev.Request != nil {
		e.From = withoutQuery(prev.Request.URL)
	}
	return nil, e
}

// withoutQuery is u without its query, fragment and user info.
func withoutQuery(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment, c.User = "", false, "", "", nil
	return c.String()
}
