// Package cache stores chunks of blobs, keyed by blob digest and chunk
// index. It knows nothing of HTTP or FUSE: the lazy package decides what a
// chunk is and when to fill one.
//
// Memory is an LRU bounded in bytes (golang-lru counts entries, so the
// budget is divided by the chunk size). Cached slices are shared: callers
// must treat them as read-only.
//
// Disk is one directory shared by every process that opens it, with no
// daemon: each blob is a sparse data file plus an index mapped shared by
// all (blobfile.go), a chunk is claimed by one fetcher at a time through a
// lock that dies with its holder, one usage counter bounds them all
// (usage.go), and any process may evict the least recently used chunks
// (evict.go). A complete blob can be handed to a check and marked verified
// for every process (mark.go); what the check is, cache does not know. A
// verified blob's data file can be opened pinned (pin.go), for the kernel
// to read directly: no process evicts it while the kernel holds it. The rules for
// directories another user could change are in trust.go.
package cache
