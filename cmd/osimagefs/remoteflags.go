package main

import (
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/publish"
)

// remoteFlags select the registry connection and the platforms.
type remoteFlags struct {
	plainHTTP bool
	insecure  bool
	caFile    string
	platforms []string
}

func (r *remoteFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&r.plainHTTP, "plain-http", false, "talk plain HTTP to the registry, localhost included (as oras does); without it every request is HTTPS and a redirect to HTTP is refused")
	fs.BoolVar(&r.insecure, "insecure", false, "skip TLS certificate verification (prefer --ca-file)")
	fs.StringVar(&r.caFile, "ca-file", "", "PEM file of extra CA certificates to trust for the registry")
	fs.StringArrayVar(&r.platforms, "platform", nil, "only this platform of an index, as os/arch[/variant] (repeatable), e.g. linux/amd64")
}

// connection is the registry connection the flags select.
func (r *remoteFlags) connection() publish.Connection {
	return publish.Connection{PlainHTTP: r.plainHTTP, Insecure: r.insecure, CAFile: r.caFile}
}

func (r *remoteFlags) storeOptions(log *slog.Logger) blobstore.Options {
	return r.connection().StoreOptions(log)
}

func (r *remoteFlags) parsePlatforms() ([]image.Platform, error) {
	var out []image.Platform
	for _, s := range r.platforms {
		p, err := image.ParsePlatform(s)
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, p)
	}
	return out, nil
}
