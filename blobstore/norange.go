package blobstore

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ErrRangeIgnored: the server answered a range GET with the whole blob
// (200 from byte 0): it ignores Range. Reading on would stream the blob up
// to the range, for every range; read the blob with StreamBlob instead. The
// error is a *RangeIgnoredError, which names the host.
var ErrRangeIgnored = errors.New("server ignores Range")

// RangeIgnoredError is ErrRangeIgnored with the host that answered.
type RangeIgnoredError struct {
	Host string // the host that answered 200 (a storage host the registry redirected to, or the registry)
}

func (e *RangeIgnoredError) Error() string {
	return fmt.Sprintf("%s: %s answers range requests with the whole blob", ErrRangeIgnored, e.Host)
}

// Is makes errors.Is(err, ErrRangeIgnored) true.
func (e *RangeIgnoredError) Is(target error) bool { return target == ErrRangeIgnored }

// RangeIgnored is how lazy, which does not import blobstore, recognises
// the error.
func (e *RangeIgnoredError) RangeIgnored() bool { return true }

// rangeIgnoredFor is how long a registry host whose range GET was answered
// with the whole blob is remembered: meanwhile ReadParts past byte 0 fails
// at once with ErrRangeIgnored, without a request that would start a
// whole-blob answer only to close it.
const rangeIgnoredFor = 10 * time.Minute

// noRangeHosts remembers the registry hosts that ignore Range, and the
// answering hosts already warned about. The zero value is ready to use; it
// is safe for concurrent use.
type noRangeHosts struct {
	mu     sync.Mutex
	hosts  map[string]noRangeHost // by registry host
	warned map[string]bool        // by answering host
}

// noRangeHost is a registry host that ignored Range.
type noRangeHost struct {
	answering string    // the host that answered 200
	until     time.Time // when to try ranges again
}

// ignored returns the error for a range GET to registry host at now, or
// nil when host is not known to ignore Range.
func (n *noRangeHosts) ignored(host string, now time.Time) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	h, ok := n.hosts[host]
	if !ok {
		return nil
	}
	if !now.Before(h.until) {
		delete(n.hosts, host)
		return nil
	}
	return &RangeIgnoredError{Host: h.answering}
}

// saw records that a range GET to registry host was answered with the
// whole blob by answering at now, and reports whether that is the first
// time answering did so (the caller warns once per host).
func (n *noRangeHosts) saw(host, answering string, now time.Time) (first bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hosts == nil {
		n.hosts, n.warned = map[string]noRangeHost{}, map[string]bool{}
	}
	n.hosts[host] = noRangeHost{answering: answering, until: now.Add(rangeIgnoredFor)}
	first = !n.warned[answering]
	n.warned[answering] = true
	return first
}

// rangeIgnored remembers the host that answered resp, the whole blob for
// a range GET, warns once per host, and returns the error.
func (s *Store) rangeIgnored(resp *http.Response) error {
	answering := s.origin.host
	if resp.Request != nil && resp.Request.URL != nil {
		answering = resp.Request.URL.Host // after redirects; never the URL, whose query may be a credential
	}
	if s.noRange.saw(s.origin.host, answering, time.Now()) {
		s.log.Warn("registry ignores Range: reads past the start of a blob stream it from its first byte, one stream per blob at a time",
			"host", answering, "remembered", rangeIgnoredFor)
	}
	return &RangeIgnoredError{Host: answering}
}
