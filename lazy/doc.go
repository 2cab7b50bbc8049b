// Package lazy presents a registry blob as a reader of byte ranges that
// fetches only what is read. Reads are split into fixed-size chunks; each
// chunk comes from the cache or, when missing, is fetched exactly once no
// matter how many readers want it at the same time (an in-flight table,
// with the cache re-checked inside). The chunks of one large read are
// fetched in parallel, and all fetches share one bound on requests in
// flight (slots.go), where fetches a reader waits for go before read-ahead
// and prefetch.
//
// A shared fetch runs on the Fetcher's own context, not on the reader's: a
// reader that is interrupted stops waiting at once, while the fetch goes on
// for the other readers and for the cache. Its deadline starts once it has
// a request slot; each reader's own deadline starts when it asks.
//
// Fetched chunks go to the memory cache at once and to the disk cache
// through one queue (diskqueue.go); a blob complete on disk is verified
// against its digest (verify.go). A server that ignores Range is read by
// one whole-blob stream per blob at a time (wholestream.go). Blob.Warm
// brings a whole blob into the disk cache and waits for its verification
// (warm.go), for osimagefs fetch.
package lazy
