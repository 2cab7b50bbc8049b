package hostsconf

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testDir = "/etc/containerd/certs.d/registry.example.com"

// server is the default server entry of registry.example.com.
func server() Host {
	return Host{Scheme: "https", Host: "registry.example.com", Path: "/v2", Capabilities: AllCapabilities}
}

// mirror is a mirror entry at https://host/v2 with every capability.
func mirror(host string) Host {
	return Host{Scheme: "https", Host: host, Path: "/v2", Capabilities: AllCapabilities, Mirror: true}
}

func with(h Host, f func(*Host)) Host { f(&h); return h }

func dump(hosts []Host) string {
	var b strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&b, "  %d: %+v\n", i, h)
	}
	return b.String()
}

func TestParseFields(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []Host
	}{
		{"empty file", ``, []Host{server()}},
		{"comments only", "# nothing\n\n", []Host{server()}},

		// server and its URL forms
		{"server https", `server = "https://upstream.example.com"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com" })}},
		{"server without scheme gets https", `server = "upstream.example.com:5000"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com:5000" })}},
		{"server http only when written", `server = "http://upstream.example.com"`,
			[]Host{with(server(), func(h *Host) { h.Scheme = "http"; h.Host = "upstream.example.com" })}},
		{"scheme is case-insensitive", `server = "HTTPS://upstream.example.com"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com" })}},
		{"server path gets /v2", `server = "https://upstream.example.com/prefix/"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = "/prefix/v2" })}},
		{"server path ending in /v2 kept", `server = "https://upstream.example.com/prefix/v2/"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = "/prefix/v2" })}},
		{"server root path", `server = "https://upstream.example.com/"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com" })}},
		{"server path cleaned", `server = "https://upstream.example.com//a/./b/../v2"`,
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = "/a/v2" })}},
		{"server override_path", "server = \"https://upstream.example.com/api/\"\noverride_path = true",
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = "/api"; h.OverridePath = true })}},
		{"server override_path at the root", "server = \"https://upstream.example.com\"\noverride_path = true",
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = ""; h.OverridePath = true })}},
		{"server override_path false", "server = \"https://upstream.example.com/api\"\noverride_path = false",
			[]Host{with(server(), func(h *Host) { h.Host = "upstream.example.com"; h.Path = "/api/v2" })}},
		{"empty server is the default", `server = ""`, []Host{server()}},
		{"ipv6 server", `server = "https://[::1]:5000"`,
			[]Host{with(server(), func(h *Host) { h.Host = "[::1]:5000" })}},

		// top-level settings apply to the server
		{"server capabilities", "server = \"https://u.example.com\"\ncapabilities = [\"pull\", \"resolve\"]",
			[]Host{with(server(), func(h *Host) { h.Host = "u.example.com"; h.Capabilities = Pull | Resolve })}},
		{"capability names are case-insensitive", "server = \"https://u.example.com\"\ncapabilities = [\"PULL\", \"Push\"]",
			[]Host{with(server(), func(h *Host) { h.Host = "u.example.com"; h.Capabilities = Pull | Push })}},
		{"top-level TLS on the default server",
			"ca = \"ca.pem\"\nclient = \"/abs/client.pem\"\nskip_verify = true\ndial_timeout = \"2s\"\n[header]\nx-a = \"1\"",
			[]Host{with(server(), func(h *Host) {
				h.CAFiles = []string{testDir + "/ca.pem"}
				h.Clients = []ClientCert{{Cert: "/abs/client.pem"}}
				h.SkipVerify = true
				h.DialTimeout = 2 * time.Second
				h.Header = http.Header{"X-A": {"1"}}
			})}},

		// ca forms
		{"ca string relative", `ca = "certs/ca.pem"`,
			[]Host{with(server(), func(h *Host) { h.CAFiles = []string{testDir + "/certs/ca.pem"} })}},
		{"ca string absolute", `ca = "/etc/ssl/a/../ca.pem"`,
			[]Host{with(server(), func(h *Host) { h.CAFiles = []string{"/etc/ssl/ca.pem"} })}},
		{"ca list", `ca = ["a.pem", "/b.pem", "../c.pem"]`,
			[]Host{with(server(), func(h *Host) {
				h.CAFiles = []string{testDir + "/a.pem", "/b.pem", "/etc/containerd/certs.d/c.pem"}
			})}},
		{"ca empty list", `ca = []`, []Host{server()}},

		// client forms
		{"client string", `client = "client.pem"`,
			[]Host{with(server(), func(h *Host) { h.Clients = []ClientCert{{Cert: testDir + "/client.pem"}} })}},
		{"client list of strings", `client = ["c1.pem", "/c2.pem"]`,
			[]Host{with(server(), func(h *Host) {
				h.Clients = []ClientCert{{Cert: testDir + "/c1.pem"}, {Cert: "/c2.pem"}}
			})}},
		{"client pairs", `client = [["c.cert", "c.key"], ["/both.pem", ""]]`,
			[]Host{with(server(), func(h *Host) {
				h.Clients = []ClientCert{{Cert: testDir + "/c.cert", Key: testDir + "/c.key"}, {Cert: "/both.pem"}}
			})}},
		{"client mixed", `client = ["one.pem", ["two.cert", "/two.key"]]`,
			[]Host{with(server(), func(h *Host) {
				h.Clients = []ClientCert{{Cert: testDir + "/one.pem"}, {Cert: testDir + "/two.cert", Key: "/two.key"}}
			})}},

		// header forms
		{"header string and list, canonical names", "[header]\nx-custom-1 = \"v\"\nX-Custom-2 = [\"a\", \"b\"]",
			[]Host{with(server(), func(h *Host) { h.Header = http.Header{"X-Custom-1": {"v"}, "X-Custom-2": {"a", "b"}} })}},
		{"header names merged", "header = { x-a = \"1\", X-A = [\"2\"] }",
			[]Host{with(server(), func(h *Host) { h.Header = http.Header{"X-A": {"1", "2"}} })}},
		{"header empty table", "[header]", []Host{server()}},

		// dial_timeout
		{"dial_timeout", `dial_timeout = "1m30s"`,
			[]Host{with(server(), func(h *Host) { h.DialTimeout = 90 * time.Second })}},
		{"dial_timeout zero", `dial_timeout = "0s"`, []Host{server()}},

		// skip_verify
		{"skip_verify false", `skip_verify = false`, []Host{server()}},

		// mirrors: every field on a host table
		{"mirror with every field", `
[host."https://mirror.example.com:8443/sub"]
  capabilities = ["pull"]
  ca = ["mirror-ca.pem"]
  client = [["m.cert", "m.key"]]
  skip_verify = true
  dial_timeout = "500ms"
  override_path = true
  [host."https://mirror.example.com:8443/sub".header]
    authorization-extra = ["x", "y"]
`, []Host{{
			Scheme: "https", Host: "mirror.example.com:8443", Path: "/sub", Capabilities: Pull,
			CAFiles:    []string{testDir + "/mirror-ca.pem"},
			Clients:    []ClientCert{{Cert: testDir + "/m.cert", Key: testDir + "/m.key"}},
			SkipVerify: true, Header: http.Header{"Authorization-Extra": {"x", "y"}},
			OverridePath: true, DialTimeout: 500 * time.Millisecond, Mirror: true,
		}, server()}},
		{"mirror without scheme gets https", `[host."mirror.example.com"]`,
			[]Host{mirror("mirror.example.com"), server()}},
		{"mirror http when written", `[host."http://10.0.0.1:5000"]`,
			[]Host{with(mirror("10.0.0.1:5000"), func(h *Host) { h.Scheme = "http" }), server()}},
		{"mirror path gets /v2", `[host."https://mirror.example.com/docker"]`,
			[]Host{with(mirror("mirror.example.com"), func(h *Host) { h.Path = "/docker/v2" }), server()}},
		{"mirror empty capabilities are all (containerd)", "[host.\"m.example.com\"]\ncapabilities = []",
			[]Host{mirror("m.example.com"), server()}},
		{"mirror capabilities repeated", "[host.\"m.example.com\"]\ncapabilities = [\"pull\", \"pull\", \"resolve\"]",
			[]Host{with(mirror("m.example.com"), func(h *Host) { h.Capabilities = Pull | Resolve }), server()}},
		{"mirror as inline table", `host."m.example.com" = { capabilities = ["pull"], ca = "ca.pem" }`,
			[]Host{with(mirror("m.example.com"), func(h *Host) {
				h.Capabilities = Pull
				h.CAFiles = []string{testDir + "/ca.pem"}
			}), server()}},
		{"mirrors and a server", `
server = "https://upstream.example.com"
capabilities = ["pull", "resolve", "push"]
[host."https://m.example.com"]
  capabilities = ["pull", "resolve"]
`, []Host{
			with(mirror("m.example.com"), func(h *Host) { h.Capabilities = Pull | Resolve }),
			with(server(), func(h *Host) { h.Host = "upstream.example.com" }),
		}},
		{"top-level settings do not leak into mirrors", "ca = \"top.pem\"\nskip_verify = true\n[host.\"m.example.com\"]",
			[]Host{mirror("m.example.com"), with(server(), func(h *Host) {
				h.CAFiles = []string{testDir + "/top.pem"}
				h.SkipVerify = true
			})}},
		{"empty host table", "[host]", []Host{server()}},
		{"the server as a mirror too", "server = \"https://registry.example.com\"\n[host.\"https://registry.example.com\"]",
			[]Host{mirror("registry.example.com"), server()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), testDir, "registry.example.com")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Hosts, tt.want) {
				t.Errorf("hosts:\n%swant:\n%s", dump(c.Hosts), dump(tt.want))
			}
			if c.File != testDir+"/hosts.toml" {
				t.Errorf("File %q", c.File)
			}
		})
	}
}

func TestParseDefaultServer(t *testing.T) {
	for _, tt := range []struct{ registry, host string }{
		{"docker.io", "registry-1.docker.io"},
		{"registry.example.com:5000", "registry.example.com:5000"},
		{"localhost:5000", "localhost:5000"}, // https: never plain http unless written
		{"[::1]:5000", "[::1]:5000"},
		{"index.docker.io", "index.docker.io"}, // only docker.io is mapped, as in containerd
	} {
		c, err := Parse([]byte("[host.\"m.example.com\"]\ncapabilities = [\"pull\"]"), testDir, tt.registry)
		if err != nil {
			t.Fatal(err)
		}
		want := Host{Scheme: "https", Host: tt.host, Path: "/v2", Capabilities: AllCapabilities}
		if len(c.Hosts) != 2 || !reflect.DeepEqual(c.Hosts[1], want) {
			t.Errorf("%s:\n%swant server %+v", tt.registry, dump(c.Hosts), want)
		}
	}
}

// Without a server, containerd gives the default server every capability
// and the /v2 path whatever the top level says: so do we, with a warning.
func TestParseDefaultServerIgnoresCapabilities(t *testing.T) {
	c, err := Parse([]byte("capabilities = [\"pull\"]\noverride_path = true\n"), testDir, "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{Scheme: "https", Host: "registry-1.docker.io", Path: "/v2", Capabilities: AllCapabilities}}
	if !reflect.DeepEqual(c.Hosts, want) {
		t.Errorf("hosts:\n%swant:\n%s", dump(c.Hosts), dump(want))
	}
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], "capabilities without server ignored (as in containerd): the default server registry-1.docker.io keeps pull|resolve|push") ||
		!strings.Contains(c.Warnings[1], "override_path without server") {
		t.Errorf("warnings %q", c.Warnings)
	}
	// Every capability: nothing ignored, nothing to warn of.
	c, err = Parse([]byte("capabilities = [\"push\", \"pull\", \"resolve\"]\n"), testDir, "docker.io")
	if err != nil || len(c.Warnings) != 0 {
		t.Errorf("warnings %q, err %v", c.Warnings, err)
	}
	// A bad capability is still an error (containerd checks it too).
	if _, err := Parse([]byte(`capabilities = ["fly"]`), testDir, "docker.io"); err == nil {
		t.Error("unknown capability without server accepted")
	}
}

func TestParseOrder(t *testing.T) {
	// Names chosen so that neither sorting nor Go's map order could
	// produce the file's order by chance, with a header subtable of an
	// earlier host after a later one (containerd's own scan lists that
	// host twice; it is one entry).
	names := []string{"https://zeta.example.com", "https://alpha.example.com", "http://mid.example.com:5000",
		"https://beta.example.com/p", "omega.example.com", "https://gamma.example.com"}
	var b strings.Builder
	b.WriteString("server = \"https://upstream.example.com\"\n")
	for _, n := range names {
		fmt.Fprintf(&b, "[host.%q]\ncapabilities = [\"pull\"]\n", n)
	}
	fmt.Fprintf(&b, "[host.%q.header]\nx-a = \"1\"\n", names[0])
	for run := 0; run < 20; run++ {
		c, err := Parse([]byte(b.String()), testDir, "docker.io")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range c.Hosts {
			got = append(got, h.URL())
		}
		want := []string{"https://zeta.example.com/v2", "https://alpha.example.com/v2", "http://mid.example.com:5000/v2",
			"https://beta.example.com/p/v2", "https://omega.example.com/v2", "https://gamma.example.com/v2",
			"https://upstream.example.com/v2"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("order %q, want %q", got, want)
		}
		if c.Hosts[0].Header.Get("X-A") != "1" {
			t.Errorf("header of the first host lost: %+v", c.Hosts[0])
		}
		for i, h := range c.Hosts {
			if h.Mirror != (i < len(names)) {
				t.Errorf("host %d Mirror %v", i, h.Mirror)
			}
		}
	}
}

// Order holds however the tables are written: dotted keys under [host],
// inline tables, and the server key after the hosts.
func TestParseOrderOtherForms(t *testing.T) {
	for _, doc := range []string{
		"[host]\n\"c.example.com\".capabilities = [\"pull\"]\n\"a.example.com\".capabilities = [\"pull\"]\n\"b.example.com\" = {}\n",
		"host = { \"c.example.com\" = {}, \"a.example.com\" = {}, \"b.example.com\" = { skip_verify = true } }\n",
		"[host.\"c.example.com\"]\n[host.\"a.example.com\"]\n[host.\"b.example.com\"]\n[host.\"c.example.com\".header]\nx = \"1\"\n",
	} {
		c, err := Parse([]byte(doc), testDir, "registry.example.com")
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var got []string
		for _, h := range c.Hosts {
			got = append(got, h.Host)
		}
		want := []string{"c.example.com", "a.example.com", "b.example.com", "registry.example.com"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: order %q, want %q", doc, got, want)
		}
	}
}

func TestParseWarnings(t *testing.T) {
	doc := `
server = "https://u.example.com"
version = 2
proxy = "http://proxy:3128"
[host."https://m.example.com"]
  capabilities = ["pull"]
  mirror_of = "x"
  proxy = "http://proxy:3128"
  [host."https://m.example.com".header]
    x-a = "1"
[other.table]
  k = 1
[host."https://n.example.com"]
  bogus = true
`
	c, err := Parse([]byte(doc), testDir, "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"unknown key version ignored",
		"proxy is not supported and is ignored",
		`unknown key host."https://m.example.com".mirror_of ignored`,
		`host."https://m.example.com".proxy is not supported and is ignored`,
		"unknown key other ignored",
		`unknown key host."https://n.example.com".bogus ignored`,
	}
	if len(c.Warnings) != len(want) {
		t.Fatalf("warnings %q, want %q", c.Warnings, want)
	}
	for i, w := range want {
		if !strings.Contains(c.Warnings[i], w) || !strings.HasPrefix(c.Warnings[i], "hostsconf: "+testDir+"/hosts.toml: ") {
			t.Errorf("warning %d %q, want %q", i, c.Warnings[i], w)
		}
	}
	if len(c.Hosts) != 3 {
		t.Errorf("hosts:\n%s", dump(c.Hosts))
	}
	// Nothing to warn of: no warnings.
	c, err = Parse([]byte("server = \"u.example.com\"\n[host.\"m\"]\n[host.\"m\".header]\nx = \"y\"\n"), testDir, "docker.io")
	if err != nil || len(c.Warnings) != 0 {
		t.Errorf("warnings %q, err %v", c.Warnings, err)
	}
}

func TestParseErrors(t *testing.T) {
	file := testDir + "/hosts.toml"
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error, after "hostsconf: FILE: "
	}{
		{"bad toml", "server = \"https://u\"\n\n[host.\"x\"]\ncapabilities = [pull]", []string{"line 4"}},
		{"unterminated table", "server = \"https://u\"\n[host.\"x\"", []string{"line 2"}},
		{"bad toml value", "server = https://u", []string{"line 1"}},
		{"duplicate key", "ca = \"a\"\nca = \"b\"", []string{"line 2", "ca"}},
		{"duplicate host with user info", "[host.\"https://u:s3cret@m\"]\n[host.\"https://u:s3cret@m\"]", []string{"line 2", "REDACTED@m"}},
		{"invalid utf-8", "server = \"\xff\"", []string{"line 1"}},

		{"server not a string", `server = 5`, []string{"server: want a URL string, got an integer"}},
		{"server user info", `server = "https://admin:s3cret@u.example.com"`,
			[]string{"server: user info is not allowed"}},
		{"server user only", `server = "https://token@u.example.com"`, []string{"server: user info"}},
		{"server query", `server = "https://u.example.com/?ns=docker.io"`, []string{"server: a query is not allowed"}},
		{"server empty query", `server = "https://u.example.com/?"`, []string{"server: a query is not allowed"}},
		{"server fragment", `server = "https://u.example.com/#x"`, []string{"server: a fragment is not allowed"}},
		{"server scheme", `server = "ftp://u.example.com"`, []string{`server: scheme "ftp": want https or http`}},
		{"server no host", `server = "https:///v2"`, []string{"server: no host"}},
		{"server empty port", `server = "https://u.example.com:"`, []string{"server: empty port"}},
		{"server bad port", `server = "https://u.example.com:http"`, []string{"server: not a URL"}},
		{"server control char", "server = \"https://u.example.com/\\u0007\"", []string{"server: not a URL"}},

		{"host not a table", `host = "m.example.com"`, []string{"host: want a table"}},
		{"host array of tables", "[[host]]\nx = 1", []string{"host: want a table"}},
		{"host entry not a table", "[host]\n\"m.example.com\" = \"pull\"", []string{`host."m.example.com": want a table, got a string`}},
		{"host entry array of tables", "[[host.\"m.example.com\"]]\ncapabilities = [\"pull\"]",
			[]string{`host."m.example.com": want a table, got a list of tables`}},
		{"host user info", "[host.\"https://user:pa55@m.example.com/x\"]\ncapabilities = [\"nope\"]",
			[]string{`host."https://REDACTED@m.example.com/x": user info is not allowed`}},
		{"host query", `[host."https://m.example.com/v2?ns=docker.io"]`, []string{`host."https://m.example.com/v2?ns=docker.io": a query`}},
		{"host scheme", `[host."file:///var/lib/registry"]`, []string{`scheme "file"`}},

		{"capabilities not a list", `capabilities = "pull"`, []string{"capabilities: want a list", "got a string"}},
		{"capabilities element", `capabilities = ["pull", 1]`, []string{"capabilities: want capability names, got an integer"}},
		{"capabilities unknown", "[host.\"m\"]\ncapabilities = [\"pull\", \"delete\"]",
			[]string{`host.m.capabilities: unknown capability "delete"`}},
		{"ca wrong type", `ca = 1`, []string{"ca: want a path or a list of paths, got an integer"}},
		{"ca element", `ca = ["a.pem", true]`, []string{"ca: want a list of paths, got an element of type a boolean"}},
		{"ca empty", `ca = ""`, []string{"ca: empty path"}},
		{"ca table", "[ca]\nfile = \"x\"", []string{"ca: want a path", "got a table"}},
		{"client wrong type", "[host.\"m\"]\nclient = 1", []string{"host.m.client: want a path, a list of paths or of [cert, key] pairs"}},
		{"client triple", `client = [["a", "b", "c"]]`, []string{"client: want a [cert, key] pair, got a list of 3"}},
		{"client pair types", `client = [["a", 1]]`, []string{"client: want a [cert, key] pair of paths, got [a string, an integer]"}},
		{"client element", `client = [1]`, []string{"client: want paths or [cert, key] pairs"}},
		{"client empty cert", `client = [["", "k"]]`, []string{"client: empty path"}},
		{"skip_verify string", `skip_verify = "yes"`, []string{"skip_verify: want true or false, got a string"}},
		{"override_path int", "[host.\"m\"]\noverride_path = 1", []string{"host.m.override_path: want true or false"}},
		{"header not a table", `header = "x-a: 1"`, []string{"header: want a table"}},
		{"header value type", "[header]\nx-a = 1", []string{"header.x-a: want a string or a list of strings, got an integer"}},
		{"header list element", "[header]\nx-a = [\"1\", 2]", []string{"header.x-a: want a list of strings"}},
		{"header nested table", "[header.x-a]\nv = \"1\"", []string{"header.x-a: want a string or a list of strings, got a table"}},
		{"header bad name", "[header]\n\"x a\" = \"1\"", []string{`header."x a": not a valid header name`}},
		{"header empty name", "[header]\n\"\" = \"1\"", []string{`header."": not a valid header name`}},
		{"header CRLF", "[header]\nx-a = \"1\\r\\nHost: evil\"", []string{"header.x-a: a header value may not hold CR, LF or NUL"}},
		{"dial_timeout int", `dial_timeout = 5`, []string{`dial_timeout: want a duration string like "5s", got an integer`}},
		{"dial_timeout unit", `dial_timeout = "5"`, []string{`dial_timeout: "5" is not a duration`}},
		{"dial_timeout garbage", "[host.\"m\"]\ndial_timeout = \"soon\"", []string{`host.m.dial_timeout: "soon" is not a duration`}},
		{"dial_timeout negative", `dial_timeout = "-1s"`, []string{`dial_timeout: "-1s" is negative`}},
		{"dial_timeout datetime", `dial_timeout = 1979-05-27`, []string{"dial_timeout: want a duration string", "got a date-time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), testDir, "registry.example.com")
			if err == nil {
				t.Fatalf("no error; hosts:\n%s", dump(c.Hosts))
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "hostsconf: "+file+": ") {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q, want %q in it", msg, w)
				}
			}
			for _, secret := range []string{"s3cret", "pa55", "token@", "user:"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q repeats user info", msg)
				}
			}
			if c.Hosts != nil || c.Warnings != nil {
				t.Errorf("a failed Parse returned %+v", c)
			}
		})
	}
}

func TestParseRegistry(t *testing.T) {
	for _, r := range []string{"", ".", "..", "../etc", "a/b", `a\b`, "a b", "a\x00b", "a\nb", "0#", "u@h", "h?x", "h%2f", "é.example"} {
		if _, err := Parse(nil, testDir, r); err == nil {
			t.Errorf("registry %q accepted", r)
		}
	}
}

func TestParseRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := Parse([]byte(`ca = "ca.pem"`), "certs.d/docker.io", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Hosts[0].CAFiles[0]
	if !strings.HasPrefix(f, "/") || !strings.HasSuffix(f, "/certs.d/docker.io/ca.pem") {
		t.Errorf("CA file %q not absolute", f)
	}
}

func TestCapabilitiesString(t *testing.T) {
	for c, want := range map[Capabilities]string{
		0: "none", Pull: "pull", Pull | Resolve: "pull|resolve", AllCapabilities: "pull|resolve|push", 0x80 | Push: "push|0x80",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q, want %q", c, got, want)
		}
	}
	if !AllCapabilities.Has(Pull|Push) || Pull.Has(Pull|Resolve) {
		t.Error("Has")
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://u:p@h/x@y":   "https://REDACTED@h/x@y",
		"u@h":                 "REDACTED@h",
		"https://a@b@h:5000":  "https://REDACTED@h:5000",
		"https://h/p?q=a@b":   "https://h/p?q=a@b",
		"https://h":           "https://h",
		"http://x:y@h#f@frag": "http://REDACTED@h#f@frag",
	} {
		if got := redact(raw); got != want {
			t.Errorf("redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
