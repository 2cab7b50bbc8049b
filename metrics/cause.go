package metrics

import (
	"context"
	"errors"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/lazy"
)

// The causes of an EIO, the label values of osimagefs_eio_total.
const (
	CauseCorrupt      = "corrupt"      // bytes failed their check: a piece (twice), or the layer against its digest
	CauseShortBlob    = "short_blob"   // the blob is shorter than its descriptor says
	CauseNotFound     = "not_found"    // the registry has no such blob (404)
	CauseUnauthorized = "unauthorized" // the registry refused access (401, 403)
	CauseUnreachable  = "unreachable"  // no HTTP conversation with the registry
	CauseBadResponse  = "bad_response" // an answer that contradicts the request
	CauseHTTPStatus   = "http_status"  // another HTTP error status (5xx, 429) after retries
	CauseTimeout      = "timeout"      // the read or its fetch ran out of time (--read-timeout)
	CauseCancelled    = "cancelled"    // the fetch was cancelled (the mount is ending)
	CauseOther        = "other"
)

// causes lists every cause, so that each series exists from the start.
var causes = []string{CauseCorrupt, CauseShortBlob, CauseNotFound, CauseUnauthorized, CauseUnreachable,
	CauseBadResponse, CauseHTTPStatus, CauseTimeout, CauseCancelled, CauseOther}

// Cause names why a read failed. What the registry said comes before the
// deadline: a read that timed out while the registry was down is
// "unreachable".
func Cause(err error) string {
	var se *blobstore.StatusError
	switch {
	case errors.Is(err, lazy.ErrCorruptBlob), errors.Is(err, lazy.ErrCorruptPiece):
		return CauseCorrupt
	case errors.Is(err, lazy.ErrBlobSize), errors.Is(err, blobstore.ErrShortBlob):
		return CauseShortBlob
	case errors.Is(err, blobstore.ErrNotFound):
		return CauseNotFound
	case errors.Is(err, blobstore.ErrUnauthorized):
		return CauseUnauthorized
	case errors.Is(err, blobstore.ErrUnreachable):
		return CauseUnreachable
	case errors.Is(err, blobstore.ErrBadResponse):
		return CauseBadResponse
	case errors.As(err, &se):
		return CauseHTTPStatus
	case errors.Is(err, context.DeadlineExceeded):
		return CauseTimeout
	case errors.Is(err, context.Canceled):
		return CauseCancelled
	}
	return CauseOther
}
