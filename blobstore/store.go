package blobstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Store reads one repository of one registry, through the mirrors its
// hosts configuration names (hosts.go). Create it with Open.
type Store struct {
	ref     name.Reference
	repo    name.Repository
	log     *slog.Logger
	opts    Options
	failed  failedRanges
	origin  *endpoint
	mirrors []*endpoint // in the order they are tried
	sent    sentRanges  // which host sent which bytes lately (distrust.go)
	// noRange remembers that the origin ignores Range.
	noRange noRangeHosts
}

// Open parses reference, reads the hosts configuration of its registry
// (Options.HostsDir), finds credentials and authenticates to the registry
// (it is contacted once, to learn how it wants to be authenticated). It
// fails with ErrUnreachable or ErrUnauthorized wrapped in a message naming
// the registry; with mirrors configured, a registry that cannot be reached
// is only a warning (the mirrors may serve everything) and is tried again
// when needed. Mirrors are contacted when first needed.
func Open(ctx context.Context, reference string, opts Options) (*Store, error) {
	var nopts []name.Option
	if opts.PlainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(reference, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", reference, err)
	}
	s := &Store{ref: ref, repo: ref.Context(), log: opts.logger(), opts: opts}
	if s.origin, s.mirrors, err = endpoints(s.repo, opts, s.log); err != nil {
		return nil, err
	}
	octx := ctx
	if len(s.mirrors) > 0 {
		// The mirrors may serve everything: a silent origin does not hold
		// the mount up (its connect goes on, for the requests after).
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, originWaitWithMirrors)
		defer cancel()
	}
	if _, err := s.origin.httpClient(octx); err != nil {
		if len(s.mirrors) == 0 || errors.Is(err, ErrUnauthorized) || ctx.Err() != nil {
			return nil, err
		}
		s.log.Warn("registry cannot be reached: reading from its mirrors", "host", s.origin.host, "err", err)
	}
	return s, nil
}

// originWaitWithMirrors bounds how long Open waits for the origin when
// there are mirrors.
const originWaitWithMirrors = 5 * time.Second

// Reference is the parsed reference the store was opened with.
func (s *Store) Reference() name.Reference { return s.ref }

// tunedTransport is http.DefaultTransport tuned for many parallel range
// requests to one host, with TLS settings tc and a dial timeout.
func tunedTransport(tc *tls.Config, dialTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = 128
	t.ResponseHeaderTimeout = 30 * time.Second
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSClientConfig = tc
	return t
}

// classify wraps err with the sentinel that describes it, if any.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		se := &StatusError{Code: terr.StatusCode}
		if len(terr.Errors) > 0 {
			se.Detail = terr.Errors[0].Message
		}
		return fmt.Errorf("%w: %w", se, err)
	}
	var nerr net.Error
	var operr *net.OpError
	if errors.As(err, &operr) || errors.As(err, &nerr) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}
