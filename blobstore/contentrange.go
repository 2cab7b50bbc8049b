package blobstore

import (
	"fmt"
	"strconv"
	"strings"
)

// parseContentRange parses "bytes first-last/total" (total may be "*").
// It returns total = -1 when the total is unknown.
func parseContentRange(v string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: want \"bytes first-last/total\"", v)
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: no total", v)
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: no range", v)
	}
	if first, err = parseNonNegative(a); err != nil {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: first byte: %w", v, err)
	}
	if last, err = parseNonNegative(b); err != nil {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: last byte: %w", v, err)
	}
	if last < first {
		return 0, 0, 0, fmt.Errorf("Content-Range %q: last byte before first", v)
	}
	total = -1
	if tot != "*" {
		if total, err = parseNonNegative(tot); err != nil {
			return 0, 0, 0, fmt.Errorf("Content-Range %q: total: %w", v, err)
		}
		if last >= total {
			return 0, 0, 0, fmt.Errorf("Content-Range %q: last byte beyond total", v)
		}
	}
	return first, last, total, nil
}

func parseNonNegative(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return strconv.ParseInt(s, 10, 64)
}
