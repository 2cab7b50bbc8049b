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
// purger, no storage redirects, log level error.
//
// A fresh value is built for every App because handlers.NewApp mutates the
// configuration it is given.
func newConfig(dir, addr, secret string) *configuration.Configuration {
	cfg := &configuration.Configuration{}
	cfg.Version = configuration.CurrentVersion
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Net = "tcp"
	cfg.HTTP.Addr = addr
	// A fixed secret keeps upload sessions valid across Restart and avoids
	// the "No HTTP secret provided" warning.
	cfg.HTTP.Secret = secret
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": dir},
		"delete":     configuration.Parameters{"enabled": true},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		"redirect":   configuration.Parameters{"disable": true},
		"maintenance": configuration.Parameters{
			// Distribution type-asserts this value to map[any]any.
			"uploadpurging": map[any]any{"enabled": false},
		},
	}
	return cfg
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail on supported platforms
	return hex.EncodeToString(b)
}
