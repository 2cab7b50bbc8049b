// Package cache stores chunks of blobs, keyed by blob digest and chunk
// index. It knows nothing of HTTP or FUSE: the lazy package decides what a
// chunk is and when to fill one.
//
// Memory is an LRU bounded in bytes (golang-lru counts entries, so the
// budget is divided by the chunk size). Cached slices are shared: callers
// must treat them as read-only.
package cache
