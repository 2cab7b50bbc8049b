package publish

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
)

// Connection is how to reach the registry: what every command that talks
// to one (push, index, profile push) takes alike. The zero value means
// HTTPS with the system's roots and the default keychain.
type Connection struct {
	// PlainHTTP talks plain HTTP to the registry and allows it to hosts it
	// redirects to (only the first contact tries HTTPS before HTTP).
	// Without it every plain-HTTP request, loopback and private addresses
	// included, is refused with a *blobstore.PlainHTTPError.
	PlainHTTP bool
	// Insecure skips TLS certificate verification.
	Insecure bool
	// CAFile adds the PEM certificates in this file to the trusted roots.
	CAFile string
	// Keychain supplies credentials; nil means authn.DefaultKeychain
	// (~/.docker/config.json, $DOCKER_CONFIG, credential helpers).
	Keychain authn.Keychain
	// Transport is the base HTTP transport; nil means a clone of
	// http.DefaultTransport with the TLS settings above. Tests use it to
	// observe requests.
	Transport http.RoundTripper
	// UserAgent is sent with every request; "" means "osimagefs".
	UserAgent string
}

// StoreOptions are the blobstore options of the connection, for reading.
func (c Connection) StoreOptions(log *slog.Logger) blobstore.Options {
	return blobstore.Options{PlainHTTP: c.PlainHTTP, Insecure: c.Insecure, CAFile: c.CAFile,
		Keychain: c.Keychain, Transport: c.Transport, UserAgent: c.UserAgent, Logger: log}
}

func (c Connection) userAgent() string {
	if c.UserAgent == "" {
		return "osimagefs"
	}
	return c.UserAgent
}

func (c Connection) keychain() authn.Keychain {
	if c.Keychain == nil {
		return authn.DefaultKeychain
	}
	return c.Keychain
}

// resolve opens the image ref through c and resolves its tree, logging
// the tree's warnings to log: what index and profile push start with.
func (c Connection) resolve(ctx context.Context, ref string, platforms []image.Platform, log *slog.Logger) (*blobstore.Store, *image.Tree, error) {
	store, err := blobstore.Open(ctx, ref, c.StoreOptions(log))
	if err != nil {
		return nil, nil, err
	}
	tree, err := store.Resolve(ctx, platforms)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range tree.Warnings {
		if log != nil {
			log.Warn(w)
		}
	}
	return store, tree, nil
}
