// Package lazy presents a registry blob as a reader of byte ranges that
// fetches only what is read. Reads are split into fixed-size chunks; each
// chunk comes from the cache or, when missing, is fetched exactly once no
// matter how many readers want it at the same time (singleflight, with the
// cache re-checked inside). The chunks of one large read are fetched in
// parallel, and all fetches share one bound on requests in flight.
//
// A shared fetch runs on the Fetcher's own context, not on the reader's: a
// reader that is interrupted stops waiting at once, while the fetch goes on
// for the other readers and for the cache.
package lazy
