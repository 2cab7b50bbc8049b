// Package registrytest runs real OCI registry infrastructure in-process for
// tests and benchmarks.
//
// It provides:
//
//   - [Registry]: a real CNCF Distribution (github.com/distribution/distribution/v3)
//     registry, filesystem storage, plain HTTP on 127.0.0.1, no auth, deletes
//     enabled, logging silenced. It can be stopped (connections refused) and
//     restarted on the same address with the same storage.
//   - [Counter]: a streaming reverse proxy that counts blob requests, the blob
//     body bytes actually written to the client, and the Range headers seen,
//     per digest and in total. Use it to assert how lazily a reader fetches.
//   - [Toxi]: an in-process toxiproxy TCP proxy to inject latency, bandwidth
//     limits, resets, timeouts and packet slicing.
//   - Small push helpers ([PushBlobFile], [PushBlobBytes], [PutManifest])
//     speaking the OCI distribution API with plain net/http.
//
// Typical use:
//
//	reg := registrytest.Start(t)
//	desc, _ := registrytest.PushBlobBytes(ctx, reg.Host(), "os/img", data, mt)
//	cnt := registrytest.NewCountingProxy(t, reg.Host())
//	// point the code under test at cnt.Host() ...
//	if cnt.BytesFor(desc.Digest.String()) > limit { ... }
//
// Logging: the registry logs through the process-wide logrus standard logger.
// It is discarded by default; set REGISTRYTEST_LOG=debug|info|warn|error to
// send it to stderr at that level.
//
// Everything listens on 127.0.0.1 only.
package registrytest
