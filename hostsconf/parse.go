package hostsconf

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The keys of a host table; the top level has these and server and host.
var hostKeys = map[string]bool{
	"capabilities": true, "ca": true, "client": true, "skip_verify": true,
	"header": true, "override_path": true, "dial_timeout": true,
}

// parser holds what every message names.
type parser struct {
	keys     []toml.Key // every key, in file order
	file     string     // the hosts.toml, for messages
	dir      string     // absolute: relative paths are resolved against it
	warnings []string
}

func (p *parser) errorf(key, format string, args ...any) error {
	return fmt.Errorf("hostsconf: %s: %s: %s", p.file, key, fmt.Sprintf(format, args...))
}

func (p *parser) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf("hostsconf: %s: ", p.file)+fmt.Sprintf(format, args...))
}

// parse decodes one hosts.toml: the mirrors in the order the file defines
// them (a Go map would lose it; the TOML decoder's key list keeps it), then
// the server.
func parse(data []byte, file, dir, registry string) (Config, error) {
	if len(data) > maxFileSize {
		return Config{}, fmt.Errorf("hostsconf: %s: larger than %d bytes", file, maxFileSize)
	}
	if err := checkLimits(data); err != nil {
		return Config{}, fmt.Errorf("hostsconf: %s: %w", file, err)
	}
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("hostsconf: %s: line %d: %s", file, errorLine(data, pe), redactAll(pe.Message))
		}
		return Config{}, fmt.Errorf("hostsconf: %s: %w", file, err)
	}
	p := &parser{keys: md.Keys(), file: file, dir: dir}
	p.unknownKeys()

	names, tables, err := p.hostTables(doc["host"])
	if err != nil {
		return Config{}, err
	}
	var hosts []Host
	for i, name := range names {
		label := "host." + quoteKey(redact(name))
		h, err := p.host(name, label, []string{"host", name}, tables[i], false)
		if err != nil {
			return Config{}, err
		}
		h.Mirror = true
		hosts = append(hosts, h)
	}

	server, err := p.server(doc, registry)
	if err != nil {
		return Config{}, err
	}
	return Config{File: file, Hosts: append(hosts, server), Warnings: p.warnings}, nil
}

// errorLine is the line of a TOML syntax error. The decoder counts a
// newline it stopped at as the start of the next line; the byte offset
// says which line the newline ends.
func errorLine(data []byte, pe toml.ParseError) int {
	if s := pe.Position.Start; s >= 0 && s <= len(data) && pe.Position.Line > 0 {
		return 1 + bytes.Count(data[:s], []byte("\n"))
	}
	return pe.Position.Line
}

// server is the top level's entry. Without a server key it is the default
// server, and as in containerd only the TLS files, skip_verify, header and
// dial_timeout apply to it: its path is "/v2" and it keeps every capability.
func (p *parser) server(doc map[string]any, registry string) (Host, error) {
	raw := ""
	if v, ok := doc["server"]; ok {
		s, ok := v.(string)
		if !ok {
			return Host{}, p.errorf("server", "want a URL string, got %s", typeName(v))
		}
		raw = s
	}
	if raw != "" {
		return p.host(raw, "server", nil, doc, false)
	}
	h, err := p.host("", "", nil, doc, true)
	if err != nil {
		return Host{}, err
	}
	d := defaultServer(registry)
	if h.Capabilities != d.Capabilities {
		p.warnf("capabilities without server ignored (as in containerd): the default server %s keeps %s",
			d.Host, d.Capabilities)
	}
	if h.OverridePath {
		p.warnf("override_path without server ignored (as in containerd): the default server's path is /v2")
	}
	d.CAFiles, d.Clients, d.SkipVerify, d.Header, d.DialTimeout = h.CAFiles, h.Clients, h.SkipVerify, h.Header, h.DialTimeout
	return d, nil
}

// hostTables lists the [host."URL"] tables in the order their keys first
// appear in the file.
func (p *parser) hostTables(v any) ([]string, []map[string]any, error) {
	if v == nil {
		return nil, nil, nil
	}
	all, ok := v.(map[string]any)
	if !ok {
		return nil, nil, p.errorf("host", "want a table of [host.\"URL\"] tables, got %s", typeName(v))
	}
	names := p.order([]string{"host"}, all)
	tables := make([]map[string]any, len(names))
	for i, name := range names {
		t, ok := all[name].(map[string]any)
		if !ok {
			return nil, nil, p.errorf("host."+quoteKey(redact(name)), "want a table, got %s", typeName(all[name]))
		}
		tables[i] = t
	}
	return names, tables, nil
}

// order lists the keys of table t, found at path in the document, in the
// order the file first names them.
func (p *parser) order(path []string, t map[string]any) []string {
	names := make([]string, 0, len(t))
	seen := map[string]bool{}
	add := func(name string) {
		if _, ok := t[name]; ok && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, k := range p.keys {
		if len(k) > len(path) && slices.Equal(k[:len(path)], path) {
			add(k[len(path)])
		}
	}
	if len(names) < len(t) { // not expected: every key is in the list
		rest := make([]string, 0, len(t))
		for name := range t {
			rest = append(rest, name)
		}
		sort.Strings(rest)
		for _, name := range rest {
			add(name)
		}
	}
	return names
}

// unknownKeys warns, once each and in file order, of the keys this
// package does not read.
func (p *parser) unknownKeys() {
	seen := map[string]bool{}
	warn := func(label, key string) {
		if seen[label] {
			return
		}
		seen[label] = true
		if key == "proxy" {
			p.warnf("%s is not supported and is ignored", label)
			return
		}
		p.warnf("unknown key %s ignored", label)
	}
	for _, k := range p.keys {
		switch {
		case k[0] == "host":
			// host."URL".key: a deeper key is a header's or a wrong value's.
			if len(k) >= 3 && !hostKeys[k[2]] {
				warn("host."+quoteKey(redact(k[1]))+"."+quoteKey(k[2]), k[2])
			}
		case k[0] != "server" && !hostKeys[k[0]]:
			warn(quoteKey(k[0]), k[0])
		}
	}
}

// host decodes one entry: the URL raw (ignored when isDefault) and the
// settings in t, found at keyPath in the document (nil for the top level).
// label names it in messages ("" or "server" for the top level).
func (p *parser) host(raw, label string, keyPath []string, t map[string]any, isDefault bool) (Host, error) {
	key := func(k string) string {
		if label == "" || label == "server" {
			return k
		}
		return label + "." + k
	}
	var h Host
	var err error
	if h.OverridePath, err = p.boolean(key("override_path"), t["override_path"]); err != nil {
		return Host{}, err
	}
	if !isDefault {
		// The URL first: nothing else about a URL with user info is worth
		// a message.
		if h.Scheme, h.Host, h.Path, err = p.url(label, raw, h.OverridePath); err != nil {
			return Host{}, err
		}
	}
	if h.Capabilities, err = p.capabilities(key("capabilities"), t["capabilities"]); err != nil {
		return Host{}, err
	}
	if h.CAFiles, err = p.paths(key("ca"), t["ca"]); err != nil {
		return Host{}, err
	}
	if h.Clients, err = p.clients(key("client"), t["client"]); err != nil {
		return Host{}, err
	}
	if h.SkipVerify, err = p.boolean(key("skip_verify"), t["skip_verify"]); err != nil {
		return Host{}, err
	}
	if h.Header, err = p.header(key("header"), append(slices.Clip(keyPath), "header"), t["header"]); err != nil {
		return Host{}, err
	}
	if h.DialTimeout, err = p.duration(key("dial_timeout"), t["dial_timeout"]); err != nil {
		return Host{}, err
	}
	return h, nil
}

// userInfo matches the user info of URLs within a message.
var userInfo = regexp.MustCompile(`://[^/?#@\s'"]*@`)

// redactAll hides the user info of every URL in a decoder's message (it
// may quote a key that is one).
func redactAll(msg string) string { return userInfo.ReplaceAllString(msg, "://REDACTED@") }

var hasScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// url splits a server or host URL: https when it names no scheme, and the
// API root path as containerd computes it (cleaned, "/v2" appended unless
// it ends so or override is set). User info, a query or a fragment is an
// error, and no message repeats the user info.
func (p *parser) url(label, raw string, override bool) (scheme, host, apiPath string, err error) {
	if !hasScheme.MatchString(raw) {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may hold user info
		}
		return "", "", "", p.errorf(label, "not a URL: %v", err)
	}
	switch {
	case u.User != nil:
		return "", "", "", p.errorf(label, "user info is not allowed in a URL (credentials belong in the credential store)")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", "", "", p.errorf(label, "scheme %q: want https or http", u.Scheme)
	case u.Opaque != "":
		return "", "", "", p.errorf(label, "not a URL with a host")
	case u.Host == "":
		return "", "", "", p.errorf(label, "no host")
	case strings.HasSuffix(u.Host, ":"):
		return "", "", "", p.errorf(label, "empty port")
	case u.RawQuery != "" || u.ForceQuery:
		return "", "", "", p.errorf(label, "a query is not allowed")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", "", "", p.errorf(label, "a fragment is not allowed")
	}
	if u.Path != "" {
		apiPath = path.Clean(u.Path)
		if apiPath == "/" {
			apiPath = ""
		}
	}
	if !override && !strings.HasSuffix(apiPath, "/v2") {
		apiPath += "/v2"
	}
	return u.Scheme, u.Host, apiPath, nil
}

// capabilities decodes a list of capability names; absent (or, as in
// containerd, empty) is every capability.
func (p *parser) capabilities(key string, v any) (Capabilities, error) {
	if v == nil {
		return AllCapabilities, nil
	}
	list, ok := v.([]any)
	if !ok {
		return 0, p.errorf(key, "want a list like [\"pull\", \"resolve\"], got %s", typeName(v))
	}
	if len(list) == 0 {
		p.warnf("%s is empty: every capability, as in containerd", key)
		return AllCapabilities, nil
	}
	var c Capabilities
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return 0, p.errorf(key, "want capability names, got %s", typeName(e))
		}
		found := false
		for _, n := range capabilityNames {
			if strings.EqualFold(s, n.name) {
				c |= n.c
				found = true
			}
		}
		if !found {
			return 0, p.errorf(key, "unknown capability %q (want pull, resolve or push)", s)
		}
	}
	return c, nil
}

// paths decodes ca: a path or a list of paths.
func (p *parser) paths(key string, v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		f, err := p.path(key, v)
		if err != nil {
			return nil, err
		}
		return []string{f}, nil
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, p.errorf(key, "want a list of paths, got an element of type %s", typeName(e))
			}
			f, err := p.path(key, s)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		return out, nil
	default:
		return nil, p.errorf(key, "want a path or a list of paths, got %s", typeName(v))
	}
}

// clients decodes client: a path, a list of paths, or a list of [cert,
// key] pairs (key "" for a cert file holding its key), mixed as
// containerd allows.
func (p *parser) clients(key string, v any) ([]ClientCert, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		f, err := p.path(key, v)
		if err != nil {
			return nil, err
		}
		return []ClientCert{{Cert: f}}, nil
	case []any:
		var out []ClientCert
		for _, e := range v {
			switch e := e.(type) {
			case string:
				f, err := p.path(key, e)
				if err != nil {
					return nil, err
				}
				out = append(out, ClientCert{Cert: f})
			case []any:
				if len(e) != 2 {
					return nil, p.errorf(key, "want a [cert, key] pair, got a list of %d", len(e))
				}
				cert, ok1 := e[0].(string)
				k, ok2 := e[1].(string)
				if !ok1 || !ok2 {
					return nil, p.errorf(key, "want a [cert, key] pair of paths, got [%s, %s]", typeName(e[0]), typeName(e[1]))
				}
				c := ClientCert{}
				var err error
				if c.Cert, err = p.path(key, cert); err != nil {
					return nil, err
				}
				if k != "" {
					if c.Key, err = p.path(key, k); err != nil {
						return nil, err
					}
				}
				out = append(out, c)
			default:
				return nil, p.errorf(key, "want paths or [cert, key] pairs, got an element of type %s", typeName(e))
			}
		}
		return out, nil
	default:
		return nil, p.errorf(key, "want a path, a list of paths or of [cert, key] pairs, got %s", typeName(v))
	}
}

// path makes a file name absolute, relative to the hosts.toml's directory.
func (p *parser) path(key, s string) (string, error) {
	if s == "" {
		return "", p.errorf(key, "empty path")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", p.errorf(key, "path %q holds a NUL byte", s)
	}
	if filepath.IsAbs(s) {
		return filepath.Clean(s), nil
	}
	return filepath.Join(p.dir, s), nil
}

func (p *parser) boolean(key string, v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	default:
		return false, p.errorf(key, "want true or false, got %s", typeName(v))
	}
}

// header decodes a table of header names to a value or a list of values.
// Names are canonicalised (x-a and X-A are one header, their values
// joined in file order); a name that is not an HTTP token, or a value holding CR, LF or
// NUL, is an error rather than a request the transport refuses later.
func (p *parser) header(key string, path []string, v any) (http.Header, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		return nil, p.errorf(key, "want a table of header names, got %s", typeName(v))
	}
	h := http.Header{}
	for _, name := range p.order(path, t) {
		k := key + "." + quoteKey(name)
		if !validHeaderName(name) {
			return nil, p.errorf(k, "not a valid header name")
		}
		var values []string
		switch v := t[name].(type) {
		case string:
			values = []string{v}
		case []any:
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, p.errorf(k, "want a list of strings, got an element of type %s", typeName(e))
				}
				values = append(values, s)
			}
		default:
			return nil, p.errorf(k, "want a string or a list of strings, got %s", typeName(v))
		}
		for _, s := range values {
			if strings.ContainsAny(s, "\r\n\x00") {
				return nil, p.errorf(k, "a header value may not hold CR, LF or NUL")
			}
		}
		canon := http.CanonicalHeaderKey(name)
		h[canon] = append(h[canon], values...)
	}
	if len(h) == 0 {
		return nil, nil
	}
	return h, nil
}

// validHeaderName: an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// duration decodes dial_timeout: a Go duration string, not negative.
func (p *parser) duration(key string, v any) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	s, ok := v.(string)
	if !ok {
		return 0, p.errorf(key, "want a duration string like \"5s\", got %s", typeName(v))
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.errorf(key, "%q is not a duration (like \"5s\" or \"1m30s\")", s)
	}
	if d < 0 {
		return 0, p.errorf(key, "%q is negative", s)
	}
	return d, nil
}

// typeName names a decoded TOML value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any:
		return "a list"
	case []map[string]any:
		return "a list of tables"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// quoteKey writes one TOML key part: bare when it can be, else quoted.
func quoteKey(k string) string {
	if k != "" && validBareKey(k) {
		return k
	}
	return fmt.Sprintf("%q", k)
}

func validBareKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// redact hides a URL's user info (up to the authority's last '@', as
// net/url splits it) so that no message or warning repeats a credential.
func redact(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + 3
	}
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndexByte(raw[start:end], '@')
	if at < 0 {
		return raw
	}
	return raw[:start] + "REDACTED" + raw[start+at:]
}
