// Package hostsconf reads containerd's registry host configuration, the
// /etc/containerd/certs.d layout (containerd's docs/hosts.md), and answers
// one question: for a registry host as written in a reference (docker.io,
// registry.example.com:5000), which hosts to try, in which order, and with
// which TLS files, headers and capabilities.
//
// It owns the directory naming (a port becomes host_port_, then host:port,
// then _default), the hosts.toml format and its containerd semantics
// (mirrors in file order, then the server; "/v2" appended unless
// override_path; docker.io's server is registry-1.docker.io), and Docker's
// certificate-file fallback for a directory without hosts.toml. It opens no
// connection and reads no certificate: paths are returned absolute, for the
// caller's TLS configuration.
//
// Where containerd is lenient this package is strict: a hosts.toml that
// does not parse, a value of the wrong type, an unknown capability, a URL
// with user info or a query is an error naming the file and the key (and
// the line, for TOML syntax), not a silent fall-back to defaults. Plain
// http is used only where a URL says http://; nothing here downgrades a
// connection or skips verification unless the file says so. Keys this
// package does not know are ignored and reported as warnings. A file
// over 256 KiB, nested deeper than 16 or with a key of more than 16 parts
// is refused before the TOML decoder sees it (limits.go).
//
// containerd's quirks are kept where they decide which hosts are tried:
// the first directory that exists is the only one read, an empty
// capabilities list means every capability, and without a server key the
// top level's capabilities and override_path do not apply to the default
// server (each reported as a warning). Its proxy key is not supported.
package hostsconf
