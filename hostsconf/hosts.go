package hostsconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Capabilities are the operations a host may be used for (containerd's
// HostCapabilities): a mirror that may not resolve a tag is only asked for
// content by digest.
type Capabilities uint8

const (
	// Pull: fetch manifests and blobs by digest.
	Pull Capabilities = 1 << iota
	// Resolve: turn a tag into a digest (a trusted operation).
	Resolve
	// Push: upload.
	Push

	// AllCapabilities is the default when a host lists none.
	AllCapabilities = Pull | Resolve | Push
)

// Has reports whether every capability in x is in c.
func (c Capabilities) Has(x Capabilities) bool { return c&x == x }

func (c Capabilities) String() string {
	var names []string
	for _, n := range capabilityNames {
		if c.Has(n.c) {
			names = append(names, n.name)
		}
	}
	if rest := c &^ AllCapabilities; rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint8(rest)))
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

var capabilityNames = []struct {
	name string
	c    Capabilities
}{{"pull", Pull}, {"resolve", Resolve}, {"push", Push}}

// ClientCert is a TLS client certificate. Key is "" when the Cert file
// holds the private key too.
type ClientCert struct {
	Cert, Key string
}

// Host is one endpoint to try for a registry.
type Host struct {
	Scheme string // "https", or "http" only where the URL says http://
	Host   string // host[:port]
	// Path is the API root: "/v2" (or a path ending in "/v2") unless
	// OverridePath, then the URL's path exactly, cleaned and without a
	// trailing slash ("" for the root).
	Path         string
	Capabilities Capabilities
	CAFiles      []string     // absolute paths, added to the system roots
	Clients      []ClientCert // absolute paths
	SkipVerify   bool
	Header       http.Header // canonical names; nil when none
	OverridePath bool
	DialTimeout  time.Duration // 0: the caller's default
	Mirror       bool          // false for the server (upstream) entry, always the last
}

// URL is the API root as a URL: scheme://host/path.
func (h Host) URL() string { return h.Scheme + "://" + h.Host + h.Path }

// Config is what Lookup and Parse found for one registry.
type Config struct {
	// File is the hosts.toml read, or the directory whose certificate
	// files were used; "" when no configuration applied.
	File string
	// Hosts are the mirrors in file order, then the server: never empty.
	Hosts []Host
	// Warnings name what was ignored: unknown keys, and settings that
	// containerd ignores too. Meant for the log.
	Warnings []string
}

// maxFileSize bounds a hosts.toml: such a file is a few hundred bytes, a
// symlink to something endless must not be read to its end, and the TOML
// decoder's cost is not linear (limits.go).
const maxFileSize = 256 << 10

// Lookup finds registry's configuration under dir (the certs.d root) as
// containerd does: the first of dir/host_port_, dir/host:port (both only
// for a registry with a port), dir/<registry> and dir/_default that
// exists is used, and no other. In it, hosts.toml is parsed; a directory
// without one (or with an empty one) falls back to Docker's certificate
// files: *.crt are CA files and each *.cert a client certificate, with the
// .key of the same name when there is one, all for the default server.
// A missing dir, or dir "", means no configuration: just the default
// server, https://<registry> (https://registry-1.docker.io for docker.io).
func Lookup(dir, registry string) (Config, error) {
	if err := checkRegistry(registry); err != nil {
		return Config{}, err
	}
	if dir == "" {
		return Config{Hosts: []Host{defaultServer(registry)}}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Config{}, fmt.Errorf("hostsconf: %s: %w", dir, err)
	}
	hostDir, err := findHostDir(abs, registry)
	if err != nil || hostDir == "" {
		return Config{Hosts: []Host{defaultServer(registry)}}, err
	}

	file := filepath.Join(hostDir, "hosts.toml")
	data, err := readFile(file)
	if err != nil {
		return Config{}, err
	}
	if len(data) == 0 {
		return certFiles(hostDir, registry)
	}
	return parse(data, file, hostDir, registry)
}

// Parse is Lookup's parser for one hosts.toml's bytes. dir is the file's
// directory: relative ca and client paths are resolved against it, and
// errors name dir/hosts.toml.
func Parse(data []byte, dir, registry string) (Config, error) {
	if err := checkRegistry(registry); err != nil {
		return Config{}, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Config{}, fmt.Errorf("hostsconf: %s: %w", dir, err)
	}
	return parse(data, filepath.Join(abs, "hosts.toml"), abs, registry)
}

// checkRegistry refuses what is not a host[:port] (a reference's domain:
// a name, an IPv4 address or a bracketed IPv6 one): the name becomes a
// directory name under the certs.d root, where a separator or ".." would
// read a file elsewhere, and the default server's URL.
func checkRegistry(registry string) error {
	bad := registry == "" || registry == "." || registry == ".."
	for i := 0; i < len(registry) && !bad; i++ {
		c := registry[i]
		bad = !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte(".-_:[]", c) >= 0)
	}
	if bad {
		return fmt.Errorf("hostsconf: registry %q: not a host[:port]", registry)
	}
	return nil
}

// hostDirNames are the directory names containerd tries for registry, in
// order (its hostPaths on Unix).
func hostDirNames(registry string) []string {
	var names []string
	if i := strings.LastIndex(registry, ":"); i > 0 {
		names = append(names, registry[:i]+"_"+registry[i+1:]+"_")
	}
	return append(names, registry, "_default")
}

// findHostDir returns the first of registry's directories under root that
// exists, or "" when none does (a missing root included).
func findHostDir(root, registry string) (string, error) {
	for _, name := range hostDirNames(registry) {
		p := filepath.Join(root, name)
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return p, nil
		case err == nil:
			return "", fmt.Errorf("hostsconf: %s: not a directory", p)
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, syscall.ENOTDIR):
			return "", fmt.Errorf("hostsconf: %s: not a directory", root)
		default:
			return "", fmt.Errorf("hostsconf: %w", err)
		}
	}
	return "", nil
}

// readFile reads a hosts.toml: nil, nil when there is none.
func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostsconf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("hostsconf: %s: %w", file, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("hostsconf: %s: larger than %d bytes", file, maxFileSize)
	}
	return data, nil
}

// certFiles is containerd's fall-back for a host directory without
// hosts.toml: Docker's certs.d pattern, for the default server.
func certFiles(hostDir, registry string) (Config, error) {
	entries, err := os.ReadDir(hostDir)
	if err != nil {
		return Config{}, fmt.Errorf("hostsconf: %w", err)
	}
	h := defaultServer(registry)
	for _, e := range entries { // sorted by name
		if e.IsDir() {
			continue
		}
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".crt"):
			h.CAFiles = append(h.CAFiles, filepath.Join(hostDir, name))
		case strings.HasSuffix(name, ".cert"):
			c := ClientCert{Cert: filepath.Join(hostDir, name)}
			key := filepath.Join(hostDir, strings.TrimSuffix(name, ".cert")+".key")
			if _, err := os.Stat(key); err == nil {
				c.Key = key
			} else if !errors.Is(err, fs.ErrNotExist) {
				return Config{}, fmt.Errorf("hostsconf: %w", err)
			}
			h.Clients = append(h.Clients, c)
		}
	}
	return Config{File: hostDir, Hosts: []Host{h}}, nil
}

// defaultServer is the upstream when no server is configured.
func defaultServer(registry string) Host {
	h := Host{Scheme: "https", Host: registry, Path: "/v2", Capabilities: AllCapabilities}
	if registry == "docker.io" {
		h.Host = "registry-1.docker.io"
	}
	return h
}
