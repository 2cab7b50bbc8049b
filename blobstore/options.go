package blobstore

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Options configure a Store. The zero value is the documented default:
// HTTPS with verification, the Docker config keychain, no logging.
type Options struct {
	// PlainHTTP talks plain HTTP to the registry and allows it to hosts it
	// redirects to (as oras' --plain-http does; only the first contact, to
	// learn how to authenticate, tries HTTPS before HTTP). Without it
	// every plain-HTTP request to it, loopback and private addresses
	// included, is refused with a *PlainHTTPError. A host of HostsDir
	// speaks plain HTTP exactly where its URL says http://.
	PlainHTTP bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// CAFile adds the PEM certificates in this file to the trusted roots.
	CAFile string
	// Keychain supplies credentials; nil means authn.DefaultKeychain
	// (~/.docker/config.json, $DOCKER_CONFIG, credential helpers).
	Keychain authn.Keychain
	// Transport is the base HTTP transport; nil means a tuned clone of
	// http.DefaultTransport. Tests use it to inject faults.
	Transport http.RoundTripper
	// Logger receives debug lines about requests; nil is silent. Lines never
	// contain credentials.
	Logger *slog.Logger
	// MaxBackoff caps the wait between retries; 0 means 2 s.
	MaxBackoff time.Duration
	// StallTimeout caps how long one attempt may receive nothing (neither
	// the response nor body bytes) before it is abandoned and retried; 0
	// means 15 s. Under a deadline an attempt gets a third of the time
	// left (at least 250 ms), so a stalled connection leaves time to retry.
	StallTimeout time.Duration
	// UserAgent is sent with every request; "" means "osimagefs".
	UserAgent string
	// HostsDir is a directory in containerd's hosts.toml layout
	// (/etc/containerd/certs.d): the mirrors to try before the registry,
	// and the registry's own settings (hosts.go). "" means none.
	HostsDir string
	// WholeBlobs reads a blob that a mirror is still filling as a whole
	// stream from that mirror (ReadParts fails with ErrRangeIgnored, and
	// StreamBlob reads the mirror first), instead of reading its ranges
	// from the next host: what osimagefs fetch wants, to leave the mirror
	// warm (Distribution 3 stops filling when the client hangs up).
	WholeBlobs bool
	// Observer, if set, is told about each request to each host and the
	// blob bytes each host sent (for metrics).
	Observer HostObserver
	// OnRetry, if set, is called before each retry with the registry's
	// host and the error of the attempt that failed (for metrics).
	OnRetry func(registry string, err error)
}

// HostObserver is told about the requests to each host (the origin
// registry or a mirror; kind is "origin" or "mirror") and their outcome
// ("ok", "error", "filling", "missing", "corrupt"), and about the blob bytes each
// host sent. Hosts are host[:port]: never credentials.
type HostObserver interface {
	HostRequest(host, kind, outcome string)
	HostBytes(host, kind string, n int64)
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) maxBackoff() time.Duration {
	if o.MaxBackoff <= 0 {
		return 2 * time.Second
	}
	return o.MaxBackoff
}

func (o Options) stallTimeout() time.Duration {
	if o.StallTimeout <= 0 {
		return 15 * time.Second
	}
	return o.StallTimeout
}
