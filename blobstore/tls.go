package blobstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrCAFile: the --ca-file could not be read or holds no certificate.
var ErrCAFile = errors.New("bad CA file")

// TLSConfig is the TLS configuration for a registry: verification on,
// unless insecure; the system roots plus the PEM certificates in caFile
// (if not empty). blobstore and the push command share it.
func TLSConfig(insecure bool, caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // only when the user asks for --insecure
	if caFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCAFile, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCAFile, caFile)
	}
	tc.RootCAs = pool
	return tc, nil
}
