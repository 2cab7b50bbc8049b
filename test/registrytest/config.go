package registrytest

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/distribution/distribution/v3/configuration"

	// Register the filesystem storage driver with the driver factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// newConfig returns the Distribution configuration used by Registry:
// filesystem storage under dir, plain HTTP on addr, no auth, deletes enabled,
// in-memory blob descriptor cache (as in the stock registry image), no upload
// purger, no redirects, log level error.
func newConfig(dir, addr string) *configuration.Configuration {
	cfg := &configuration.Configuration{}
	cfg.Version = configuration.MajorMinorVersion(0, 1)
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Net = "tcp"
	cfg.HTTP.Addr = addr
	// A fixed secret keeps in-progress uploads valid across Restart (the
	// registry would otherwise generate a random one per App and warn).
	cfg.HTTP.Secret = randomSecret()
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": dir},
		"delete":     configuration.Parameters{"enabled": true},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		"redirect":   configuration.Parameters{"disable": true},
		"maintenance": configuration.Parameters{
			// Distribution type-asserts this to map[any]any.
			"uploadpurging": map[any]any{"enabled": false},
		},
	}
	return cfg
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
