package main

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
