package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

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
	hostsDir  string
	platforms []string
}

// defaultHostsDir is containerd's registry host configuration, used when
// it exists.
const defaultHostsDir = "/etc/containerd/certs.d"

const hostsDirHelp = `directory of registry host configuration in containerd's layout
(<dir>/<registry>/hosts.toml, else <dir>/_default/hosts.toml): the mirrors
and pull-through caches to read through, in order, before the registry;
"none" for none (default ` + defaultHostsDir + ` when it exists). A host
there speaks plain HTTP only where its URL says http:// (one warning each)`

// register adds the flags of a command that reads images: the
// connection, the platforms and the mirrors (--hosts-dir).
func (r *remoteFlags) register(fs *pflag.FlagSet) {
	r.registerForWrites(fs)
	fs.StringVar(&r.hostsDir, "hosts-dir", "", hostsDirHelp)
}

// registerForWrites adds the flags of a command that writes to the
// registry (push, index, profile push): no mirrors, writes go to the
// registry itself.
func (r *remoteFlags) registerForWrites(fs *pflag.FlagSet) {
	fs.BoolVar(&r.plainHTTP, "plain-http", false, "talk plain HTTP to the registry, localhost included (as oras does); without it every request to the registry is HTTPS and a redirect to HTTP is refused")
	fs.BoolVar(&r.insecure, "insecure", false, "skip TLS certificate verification (prefer --ca-file)")
	fs.StringVar(&r.caFile, "ca-file", "", "PEM file of extra CA certificates to trust for the registry")
	fs.StringArrayVar(&r.platforms, "platform", nil, "only this platform of an index, as os/arch[/variant] (repeatable), e.g. linux/amd64")
}

// connection is the registry connection the flags select.
func (r *remoteFlags) connection() publish.Connection {
	return publish.Connection{PlainHTTP: r.plainHTTP, Insecure: r.insecure, CAFile: r.caFile}
}

func (r *remoteFlags) storeOptions(log *slog.Logger) (blobstore.Options, error) {
	opts := r.connection().StoreOptions(log)
	dir, err := r.hostsDirectory()
	opts.HostsDir = dir
	return opts, err
}

// hostsDirectory is the --hosts-dir to read: as given (it must be a
// directory), "" for none, or the default when it exists.
func (r *remoteFlags) hostsDirectory() (string, error) {
	switch r.hostsDir {
	case "none":
		return "", nil
	case "":
		if st, err := os.Stat(defaultHostsDir); err == nil && st.IsDir() {
			return defaultHostsDir, nil
		}
		return "", nil
	}
	st, err := os.Stat(r.hostsDir)
	if err == nil && !st.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return "", usageError{fmt.Errorf("--hosts-dir %s: %w", r.hostsDir, err)}
	}
	return r.hostsDir, nil
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
