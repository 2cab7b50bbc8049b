package blobstore

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// checkStatus turns a response whose status is not want into a
// *StatusError carrying the registry's error text and Retry-After.
func checkStatus(resp *http.Response, want ...int) error {
	if err := transport.CheckError(resp, want...); err != nil {
		se := &StatusError{Code: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
		if terr, ok := err.(*transport.Error); ok && len(terr.Errors) > 0 {
			se.Detail = strings.TrimSpace(fmt.Sprintf("%s: %s", terr.Errors[0].Code, terr.Errors[0].Message))
		}
		return se
	}
	return nil
}

// retryAfter parses a Retry-After header in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
