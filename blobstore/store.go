package blobstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Store reads one repository of one registry. Create it with Open.
type Store struct {
	ref    name.Reference
	repo   name.Repository
	client *http.Client
	log    *slog.Logger
	opts   Options
	failed failedRanges
	// noRange remembers that the registry ignores Range.
	noRange noRangeHosts
}

// Open parses reference, finds credentials for its registry and
// authenticates (the registry is contacted once, to learn how it wants to be
// authenticated). It fails with ErrUnreachable or ErrUnauthorized wrapped in
// a message naming the registry.
func Open(ctx context.Context, reference string, opts Options) (*Store, error) {
	var nopts []name.Option
	if opts.PlainHTTP {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(reference, nopts...)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", reference, err)
	}
	repo := ref.Context()
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	auth, err := kc.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("find credentials for %s: %w", repo.RegistryStr(), err)
	}
	base := opts.Transport
	if base == nil {
		base, err = defaultTransport(opts)
		if err != nil {
			return nil, err
		}
	}
	base = GuardPlainHTTP(base, opts.PlainHTTP)
	ua := opts.UserAgent
	if ua == "" {
		ua = "osimagefs"
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(base, ua), []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("connect to registry %s: %w", repo.RegistryStr(), classify(err))
	}
	return &Store{
		ref:    ref,
		repo:   repo,
		client: &http.Client{Transport: rt},
		log:    opts.logger(),
		opts:   opts,
	}, nil
}

// Reference is the parsed reference the store was opened with.
func (s *Store) Reference() name.Reference { return s.ref }

// defaultTransport is http.DefaultTransport tuned for many parallel range
// requests to one host, with the TLS settings of opts.
func defaultTransport(opts Options) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = 128
	t.ResponseHeaderTimeout = 30 * time.Second
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tc, err := TLSConfig(opts.Insecure, opts.CAFile)
	if err != nil {
		return nil, err
	}
	t.TLSClientConfig = tc
	return t, nil
}

// scheme is the scheme of the URLs the store builds: HTTPS unless plain
// HTTP is allowed. go-containerregistry's Registry.Scheme answers "http"
// for loopback and private addresses whatever the options say.
func (s *Store) scheme() string {
	if s.opts.PlainHTTP {
		return "http"
	}
	return "https"
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
