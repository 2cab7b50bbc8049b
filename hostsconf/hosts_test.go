package hostsconf

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFiles creates files (path relative to root: content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func hostNames(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.URL())
	}
	return out
}

// The committed testdata/certs.d, as a host would have it.
func TestLookupTestdata(t *testing.T) {
	root, err := filepath.Abs("testdata/certs.d")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		registry string
		file     string
		want     []Host
	}{
		{"docker.io", "docker.io/hosts.toml", []Host{
			{Scheme: "https", Host: "docker-mirror.internal", Path: "/v2", Capabilities: Pull | Resolve,
				CAFiles: []string{root + "/docker.io/docker-mirror.crt"}, DialTimeout: 2 * time.Second, Mirror: true},
			{Scheme: "https", Host: "public-mirror.example.com", Path: "/dockerhub/v2", Capabilities: Pull, Mirror: true},
			{Scheme: "http", Host: "10.1.2.3:5000", Path: "/v2", Capabilities: Pull,
				Header: http.Header{"X-Mirror-Token": {"static"}}, Mirror: true},
			{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: Pull | Resolve},
		}},
		{"registry.example.com:5000", "registry.example.com_5000_/hosts.toml", []Host{
			{Scheme: "https", Host: "cache.example.com", Path: "/v2/registry.example.com", Capabilities: Pull | Resolve,
				Clients: []ClientCert{
					{Cert: root + "/registry.example.com_5000_/client.cert", Key: root + "/registry.example.com_5000_/client.key"},
					{Cert: "/etc/pki/both.pem"},
				},
				OverridePath: true, Mirror: true},
			{Scheme: "https", Host: "registry.example.com:5000", Path: "/v2", Capabilities: AllCapabilities},
		}},
		{"ghcr.io", "_default/hosts.toml", []Host{
			{Scheme: "https", Host: "mirror.example.com", Path: "/v2", Capabilities: Pull | Resolve,
				CAFiles: []string{"/etc/ssl/certs/corp-ca.pem", root + "/_default/mirror-ca.pem"}, Mirror: true},
			{Scheme: "https", Host: "ghcr.io", Path: "/v2", Capabilities: AllCapabilities},
		}},
		{"quay.io", "quay.io", []Host{
			{Scheme: "https", Host: "quay.io", Path: "/v2", Capabilities: AllCapabilities,
				CAFiles: []string{root + "/quay.io/ca.crt"},
				Clients: []ClientCert{{Cert: root + "/quay.io/client.cert", Key: root + "/quay.io/client.key"},
					{Cert: root + "/quay.io/other.cert"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.registry, func(t *testing.T) {
			for _, dir := range []string{root, "testdata/certs.d"} { // relative dirs give absolute paths
				c, err := Lookup(dir, tt.registry)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(c.Hosts, tt.want) {
					t.Errorf("hosts:\n%swant:\n%s", dump(c.Hosts), dump(tt.want))
				}
				if want := filepath.Join(root, tt.file); c.File != want {
					t.Errorf("File %q, want %q", c.File, want)
				}
				if len(c.Warnings) != 0 {
					t.Errorf("warnings %q", c.Warnings)
				}
			}
		})
	}
}

func TestLookupNoConfig(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"", filepath.Join(root, "missing"), root} {
		for registry, want := range map[string]string{
			"docker.io": "https://registry-1.docker.io/v2", "registry.example.com:5000": "https://registry.example.com:5000/v2",
			"localhost:5000": "https://localhost:5000/v2",
		} {
			c, err := Lookup(dir, registry)
			if err != nil {
				t.Fatal(err)
			}
			if got := hostNames(c.Hosts); len(got) != 1 || got[0] != want || c.Hosts[0].Mirror || c.File != "" {
				t.Errorf("%q %s: %+v, want only %s", dir, registry, c, want)
			}
		}
	}
}

// containerd's order for a registry with a port: host_port_, then
// host:port, then _default; the first directory that exists is the only
// one read.
func TestLookupDirectoryNaming(t *testing.T) {
	const reg = "registry.example.com:5000"
	mirrorFile := func(m string) string { return "[host.\"https://" + m + "\"]\n" }
	tests := []struct {
		name  string
		files map[string]string
		want  string // the first host's host, "" for the default server alone
	}{
		{"underscore form first", map[string]string{
			"registry.example.com_5000_/hosts.toml": mirrorFile("underscore"),
			"registry.example.com:5000/hosts.toml":  mirrorFile("colon"),
			"_default/hosts.toml":                   mirrorFile("default"),
		}, "underscore"},
		{"colon form", map[string]string{
			"registry.example.com:5000/hosts.toml": mirrorFile("colon"),
			"_default/hosts.toml":                  mirrorFile("default"),
		}, "colon"},
		{"port-less directory does not match", map[string]string{
			"registry.example.com/hosts.toml": mirrorFile("portless"),
			"_default/hosts.toml":             mirrorFile("default"),
		}, "default"},
		{"_default", map[string]string{"_default/hosts.toml": mirrorFile("default")}, "default"},
		// A directory without hosts.toml is still the one: its certificate
		// files, and _default is not read (containerd's HostDirFromRoot).
		{"directory without hosts.toml", map[string]string{
			"registry.example.com_5000_/ca.crt": "",
			"_default/hosts.toml":               mirrorFile("default"),
		}, ""},
		{"empty hosts.toml", map[string]string{
			"registry.example.com_5000_/hosts.toml": "",
			"_default/hosts.toml":                   mirrorFile("default"),
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			c, err := Lookup(root, reg)
			if err != nil {
				t.Fatal(err)
			}
			last := c.Hosts[len(c.Hosts)-1]
			if last.URL() != "https://registry.example.com:5000/v2" || last.Mirror {
				t.Errorf("server %+v", last)
			}
			got := ""
			if len(c.Hosts) > 1 {
				got = c.Hosts[0].Host
			}
			if got != tt.want {
				t.Errorf("first host %q, want %q:\n%s", got, tt.want, dump(c.Hosts))
			}
		})
	}
}

func TestLookupCertFiles(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"docker.io/b.crt":        "",
		"docker.io/a.crt":        "",
		"docker.io/only.cert":    "",
		"docker.io/pair.cert":    "",
		"docker.io/pair.key":     "",
		"docker.io/stray.key":    "",
		"docker.io/ca.pem":       "",
		"docker.io/sub.crt/x":    "", // a directory named .crt is skipped
		"docker.io/sub/deep.crt": "",
	})
	c, err := Lookup(root, "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(root, "docker.io")
	want := []Host{{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: AllCapabilities,
		CAFiles: []string{d + "/a.crt", d + "/b.crt"},
		Clients: []ClientCert{{Cert: d + "/only.cert"}, {Cert: d + "/pair.cert", Key: d + "/pair.key"}}}}
	if !reflect.DeepEqual(c.Hosts, want) || c.File != d {
		t.Errorf("%+v\nhosts:\n%swant:\n%s", c, dump(c.Hosts), dump(want))
	}
}

func TestLookupErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		dir   string // under root; "" for root
		want  []string
	}{
		{"bad toml names file and line", map[string]string{"docker.io/hosts.toml": "server = \"https://x\"\n[host.\"m\"\n"},
			"", []string{"docker.io/hosts.toml: line 2"}},
		{"bad value names file and key", map[string]string{"_default/hosts.toml": "[host.\"https://m\"]\ndial_timeout = \"-5s\"\n"},
			"", []string{`_default/hosts.toml: host."https://m".dial_timeout: "-5s" is negative`}},
		{"host directory is a file", map[string]string{"docker.io": "x"}, "", []string{"docker.io: not a directory"}},
		{"root is a file", map[string]string{"certs": "x"}, "certs", []string{"certs: not a directory"}},
		{"hosts.toml is a directory", map[string]string{"docker.io/hosts.toml/x": ""}, "", []string{"docker.io/hosts.toml"}},
		{"too large", map[string]string{"docker.io/hosts.toml": "#" + strings.Repeat("x", maxFileSize)}, "",
			[]string{"docker.io/hosts.toml: larger than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			_, err := Lookup(filepath.Join(root, tt.dir), "docker.io")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), root+"/"+w) {
					t.Errorf("error %q, want %q in it", err, root+"/"+w)
				}
			}
		})
	}
	for _, r := range []string{"", "..", "../../etc", "a/b"} {
		if _, err := Lookup(t.TempDir(), r); err == nil {
			t.Errorf("registry %q accepted", r)
		}
	}
}

// A symlinked host directory (a common way to share one configuration)
// is followed, and relative paths resolve against the link's directory,
// as containerd joins them.
func TestLookupSymlinkedDir(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"shared/hosts.toml": "ca = \"ca.pem\"\n"})
	if err := os.Symlink("shared", filepath.Join(root, "docker.io")); err != nil {
		t.Fatal(err)
	}
	c, err := Lookup(root, "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Hosts[0].CAFiles; len(got) != 1 || got[0] != root+"/docker.io/ca.pem" {
		t.Errorf("CAFiles %q", got)
	}
}

func TestHostDirNames(t *testing.T) {
	for registry, want := range map[string][]string{
		"docker.io":      {"docker.io", "_default"},
		"r.example:5000": {"r.example_5000_", "r.example:5000", "_default"},
		"[::1]:5000":     {"[::1]_5000_", "[::1]:5000", "_default"},
	} {
		if got := hostDirNames(registry); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %q, want %q", registry, got, want)
		}
	}
}
