package main

// The default --memory-cache. With a disk cache, what was read is in the
// kernel's page cache twice over (the mount's pages and the cache files'),
// so the daemon keeps little more than the chunks in flight: a mount
// reading a 1 GiB layer peaks near 110 MiB resident, and thirty mounts on
// a host stay a few GiB. Without one, memory is the only cache.
const (
	memoryWithDisk    = 64 << 20
	memoryWithoutDisk = 256 << 20
)

// memoryLimitSlack is what the daemon needs besides the chunks: the tree,
// go-fuse's buffers, HTTP, the runtime.
const memoryLimitSlack = 48 << 20

// memoryLimit returns the Go runtime's soft memory limit for a daemon
// whose chunks may take memoryCache bytes, and whether to set it: not when
// the user set GOMEMLIMIT (gomemlimit is its value), because the runtime
// has applied theirs already and it must win.
func memoryLimit(gomemlimit string, memoryCache int64) (int64, bool) {
	if gomemlimit != "" {
		return 0, false
	}
	return memoryCache + memoryLimitSlack, true
}
