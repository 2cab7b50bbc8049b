package hostsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input panics, and whatever parses keeps the promises:
// mirrors first, the server last, http or https, a host, absolute paths,
// an API path that ends in /v2 unless overridden, and no user info.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/certs.d/*/hosts.toml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "docker.io")
	}
	for _, s := range []string{
		"",
		`server = "registry.example.com:5000"`,
		"[host.\"https://m\"]\ncapabilities = [\"pull\"]\nclient = [[\"a\", \"\"], \"b\"]\n[host.\"https://m\".header]\nx = [\"1\"]",
		"host = { \"a\" = {}, \"b\" = { ca = [\"x\"] } }\nheader.y = \"2\"",
		"[[host]]\n[host.\"u:p@m\"]\ndial_timeout = \"1h\"",
		"server = \"https://u:p@h/?q#f\"\noverride_path = true",
	} {
		f.Add([]byte(s), "registry.example.com:5000")
	}
	f.Fuzz(func(t *testing.T, data []byte, registry string) {
		c, err := Parse(data, "/etc/containerd/certs.d/x", registry)
		if err != nil {
			if c.Hosts != nil || c.Warnings != nil {
				t.Fatalf("error %v with %+v", err, c)
			}
			return
		}
		if len(c.Hosts) == 0 {
			t.Fatal("no hosts")
		}
		for i, h := range c.Hosts {
			if h.Mirror != (i < len(c.Hosts)-1) {
				t.Fatalf("host %d of %d: Mirror %v", i, len(c.Hosts), h.Mirror)
			}
			if h.Scheme != "https" && h.Scheme != "http" {
				t.Fatalf("scheme %q", h.Scheme)
			}
			if h.Host == "" || strings.ContainsAny(h.Host, "@/?#") {
				t.Fatalf("host %q", h.Host)
			}
			if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || strings.HasSuffix(h.Path, "/")) {
				t.Fatalf("path %q", h.Path)
			}
			if !h.OverridePath && !strings.HasSuffix(h.Path, "/v2") {
				t.Fatalf("path %q without override_path", h.Path)
			}
			if h.DialTimeout < 0 || h.Capabilities == 0 || h.Capabilities&^AllCapabilities != 0 {
				t.Fatalf("%+v", h)
			}
			for _, p := range h.CAFiles {
				if !filepath.IsAbs(p) {
					t.Fatalf("CA file %q", p)
				}
			}
			for _, cc := range h.Clients {
				if !filepath.IsAbs(cc.Cert) || (cc.Key != "" && !filepath.IsAbs(cc.Key)) {
					t.Fatalf("client %+v", cc)
				}
			}
			for k, vs := range h.Header {
				if !validHeaderName(k) {
					t.Fatalf("header %q", k)
				}
				for _, v := range vs {
					if strings.ContainsAny(v, "\r\n\x00") {
						t.Fatalf("header %q: %q", k, v)
					}
				}
			}
		}
	})
}
