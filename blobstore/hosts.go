package blobstore

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/osimagefs/osimagefs/hostsconf"
)

// defaultDialTimeout bounds a TCP connect unless hosts.toml says otherwise.
const defaultDialTimeout = 10 * time.Second

// endpoints are the origin and the mirrors of repo's registry: the hosts
// its hosts configuration names (Options.HostsDir, containerd's layout),
// else the registry alone with the settings of opts. The origin's TLS
// flags (Insecure, CAFile, PlainHTTP) apply to the server entry only; a
// mirror speaks plain HTTP only where its URL says http://.
func endpoints(repo name.Repository, opts Options, log *slog.Logger) (*endpoint, []*endpoint, error) {
	registry := repo.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io" // as containerd names Docker Hub's directory and ns
	}
	cfg, err := hostsconf.Lookup(opts.HostsDir, registry)
	if err != nil {
		return nil, nil, fmt.Errorf("%w of %s: %w", ErrHostsConfig, registry, err)
	}
	for _, w := range cfg.Warnings {
		log.Warn("hosts configuration: ignored", "file", cfg.File, "what", w)
	}
	if cfg.File == "" {
		// No configuration: the registry as the reference names it.
		cfg.Hosts = []hostsconf.Host{{Scheme: "https", Host: repo.RegistryStr(), Path: "/v2", Capabilities: hostsconf.AllCapabilities}}
	}
	var origin *endpoint
	var mirrors []*endpoint
	for _, h := range cfg.Hosts {
		if h.Scheme == "http" {
			log.Warn("hosts configuration: plain HTTP to this host, as its URL says", "file", cfg.File, "host", h.Host)
		}
		e, err := newEndpoint(h, repo, registry, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("%w %s: host %s: %w", ErrHostsConfig, cfg.File, h.URL(), err)
		}
		if h.Mirror {
			mirrors = append(mirrors, e)
		} else {
			origin = e
		}
	}
	if len(mirrors) > 0 {
		log.Debug("hosts configuration", "file", cfg.File, "mirrors", len(mirrors), "origin", origin.root)
	}
	return origin, mirrors, nil
}

// newEndpoint is the endpoint for host h of repo, whose registry is
// registry (the mirrors' ns).
func newEndpoint(h hostsconf.Host, repo name.Repository, registry string, opts Options) (*endpoint, error) {
	plain := h.Scheme == "http" || (!h.Mirror && opts.PlainHTTP)
	scheme := "https"
	if plain {
		scheme = "http"
	}
	e := &endpoint{
		host: h.Host, mirror: h.Mirror, root: scheme + "://" + h.Host + h.Path, header: h.Header,
		pull: h.Capabilities.Has(hostsconf.Pull), resolve: h.Capabilities.Has(hostsconf.Resolve),
	}
	if isProxy(h.Host, registry) {
		e.query = url.Values{"ns": {registry}}.Encode()
	}
	base := opts.Transport
	if base == nil {
		caFiles := h.CAFiles
		if !h.Mirror && opts.CAFile != "" {
			caFiles = append([]string{opts.CAFile}, caFiles...)
		}
		tc, err := tlsConfig(h.SkipVerify || (!h.Mirror && opts.Insecure), caFiles, h.Clients)
		if err != nil {
			return nil, err
		}
		dial := h.DialTimeout
		if dial <= 0 {
			dial = defaultDialTimeout
		}
		base = tunedTransport(tc, dial)
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "osimagefs"
	}
	rt := transport.NewUserAgent(withHeaders(GuardPlainHTTP(base, plain), h.Host, h.Header), ua)
	var nopts []name.Option
	if plain {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(h.Host, nopts...)
	if err != nil {
		return nil, fmt.Errorf("host name: %w", err)
	}
	// Credentials are those of the host itself; the origin's are the
	// reference's registry's when it is that host (Docker Hub's API host
	// included): none is ever sent to another host.
	var creds authn.Resource = reg
	if !h.Mirror && (h.Host == repo.RegistryStr() || !isProxy(h.Host, registry)) {
		creds = repo
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	scopes := []string{repo.Scope(transport.PullScope)}
	e.connect = func(ctx context.Context) (*http.Client, error) {
		if h.OverridePath {
			// An API root of its own: no registry handshake there;
			// hosts.toml headers carry what it needs.
			return &http.Client{Transport: rt}, nil
		}
		auth, err := kc.Resolve(creds)
		if err != nil {
			return nil, fmt.Errorf("find credentials for %s: %w", creds.RegistryStr(), err)
		}
		t, err := transport.NewWithContext(ctx, reg, auth, rt, scopes)
		if err != nil {
			return nil, err
		}
		return &http.Client{Transport: t}, nil
	}
	return e, nil
}

// isProxy reports whether host serves registry's repositories on its
// behalf (as containerd decides: any other host, Docker Hub's own API
// hosts for docker.io aside); such a host is told which registry with ?ns=.
func isProxy(host, registry string) bool {
	dockerHub := registry == "docker.io" && (host == "registry-1.docker.io" || host == name.DefaultRegistry)
	return host != registry && !dockerHub
}
