package blobstore

import (
	"context"
	"errors"
)

// Request outcomes, as the metrics label them.
const (
	outcomeOK      = "ok"
	outcomeError   = "error"
	outcomeFilling = "filling" // a mirror answered a range with the whole blob
	outcomeMissing = "missing" // a mirror does not have it (404, or refused)
	outcomeCorrupt = "corrupt" // bytes a mirror sent failed their check
)

// observeRequest tells Options.Observer how a request to e ended.
func (s *Store) observeRequest(e *endpoint, err error) {
	if err == nil {
		s.observeOutcome(e, outcomeOK)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	s.observeOutcome(e, outcomeError)
}

// observeOutcome tells Options.Observer of a request to e and its outcome.
func (s *Store) observeOutcome(e *endpoint, outcome string) {
	if s.opts.Observer != nil {
		s.opts.Observer.HostRequest(e.host, e.kind(), outcome)
	}
}

// observeBytes tells Options.Observer that e sent n blob bytes.
func (s *Store) observeBytes(e *endpoint, n int64) {
	if s.opts.Observer != nil && n > 0 {
		s.opts.Observer.HostBytes(e.host, e.kind(), n)
	}
}
