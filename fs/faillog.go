package fs

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// failLogInterval is the least time between two "read failed" lines for
// one blob.
const failLogInterval = 10 * time.Second

// failLog limits the log lines of failed reads to one per blob per
// interval, and counts the failures it keeps quiet about. It holds one
// entry per blob that ever failed: at most the blobs of the tree.
type failLog struct {
	interval time.Duration

	mu    sync.Mutex // guards blobs
	blobs map[digest.Digest]*failCount
}

// failCount is the state of one blob: when its last line was logged, and
// how many failed reads were not logged since.
type failCount struct {
	logged     time.Time
	suppressed int
}

func newFailLog(interval time.Duration) *failLog {
	return &failLog{interval: interval, blobs: map[digest.Digest]*failCount{}}
}

// allow records a failed read of blob d at now. It reports whether to log
// it and, if so, how many failed reads of d were not logged since its last
// line.
func (l *failLog) allow(d digest.Digest, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, seen := l.blobs[d]
	if !seen {
		l.blobs[d] = &failCount{logged: now}
		return 0, true
	}
	if now.Sub(c.logged) < l.interval {
		c.suppressed++
		return 0, false
	}
	n := c.suppressed
	c.logged, c.suppressed = now, 0
	return n, true
}
