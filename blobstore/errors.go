package blobstore

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors, reachable with errors.Is through any wrapping.
var (
	// ErrNotFound: the registry has no such repository, tag, manifest or blob.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: the registry refused the credentials (or their absence).
	ErrUnauthorized = errors.New("access denied")
	// ErrUnreachable: no HTTP conversation with the registry was possible.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrBadResponse: the registry answered with something that contradicts
	// the request (wrong Content-Range, wrong length, wrong digest).
	ErrBadResponse = errors.New("bad response from registry")
	// ErrTooLarge: a document is larger than osimagefs accepts. Retrying
	// cannot help.
	ErrTooLarge = errors.New("document too large")
	// ErrHostsConfig: the hosts configuration (Options.HostsDir) cannot be
	// used: a hosts.toml that does not parse, a bad value, a CA or client
	// certificate file that cannot be read.
	ErrHostsConfig = errors.New("bad hosts configuration")
)

// StatusError is an HTTP status the registry answered with.
type StatusError struct {
	Code int
	// Detail is the registry's error text, trimmed.
	Detail string
	// RetryAfter is the wait the registry asked for (429, 503), or 0.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is maps statuses onto the sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == http.StatusNotFound
	case ErrUnauthorized:
		return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
	}
	return false
}

// transient reports whether retrying may help.
func (e *StatusError) transient() bool {
	return e.Code == http.StatusTooManyRequests || e.Code == http.StatusRequestTimeout || e.Code >= 500
}
