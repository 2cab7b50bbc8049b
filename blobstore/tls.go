package blobstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/osimagefs/osimagefs/hostsconf"
)

// ErrCAFile: the --ca-file could not be read or holds no certificate.
var ErrCAFile = errors.New("bad CA file")

// TLSConfig is the TLS configuration for a registry: verification on,
// unless insecure; the system roots plus the PEM certificates in caFile
// (if not empty). blobstore and the push command share it.
func TLSConfig(insecure bool, caFile string) (*tls.Config, error) {
	var files []string
	if caFile != "" {
		files = []string{caFile}
	}
	return tlsConfig(insecure, files, nil)
}

// tlsConfig is TLSConfig with any number of CA files and client
// certificates (hosts.toml's ca and client).
func tlsConfig(insecure bool, caFiles []string, clients []hostsconf.ClientCert) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // only when the user asks for it
	if len(caFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range caFiles {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCAFile, f)
			}
		}
		tc.RootCAs = pool
	}
	for _, c := range clients {
		key := c.Key
		if key == "" {
			key = c.Cert // the certificate file holds the key too
		}
		cert, err := tls.LoadX509KeyPair(c.Cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", c.Cert, err)
		}
		tc.Certificates = append(tc.Certificates, cert)
	}
	return tc, nil
}
