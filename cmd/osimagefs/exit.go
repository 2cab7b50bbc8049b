package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/osimagefs/osimagefs/blobstore"
	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/source"
)

// Exit statuses, documented in the root command's help and the README.
const (
	exitFailure       = 1
	exitUsage         = 2
	exitNotFound      = 3
	exitDenied        = 4
	exitUnreachable   = 5
	exitNotOSImage    = 6
	exitBadMountpoint = 7
)

// Exit statuses of a mount without FUSE, and of an interrupted command
// (128 + the signal's number: 130 for SIGINT, 143 for SIGTERM).
const (
	exitFUSEUnavailable = 8
	exitInterrupted     = 128
)

// usageError marks bad flags, arguments or input.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// mountpointError marks a mount point that cannot be used.
type mountpointError struct{ error }

func (e mountpointError) Unwrap() error { return e.error }

// exitCode maps an error to the process exit status.
func exitCode(err error) int {
	var ue usageError
	var me mountpointError
	var ie interruptedError
	var re reportedError
	switch {
	case errors.As(err, &re):
		return re.code
	case errors.As(err, &ie):
		return exitInterrupted + int(ie.sig)
	case errors.As(err, &ue), source.IsBadInput(err):
		// A CA file or hosts configuration that cannot be used, a
		// directory that is not an OCI layout, a reference to a layout
		// that names no single image.
		return exitUsage
	case errors.As(err, &me), errors.Is(err, osfs.ErrMountpoint):
		return exitBadMountpoint
	case errors.Is(err, osfs.ErrFUSEUnavailable):
		return exitFUSEUnavailable
	case errors.Is(err, image.ErrNotOSImage):
		return exitNotOSImage
	case source.IsNotFound(err):
		return exitNotFound
	case errors.Is(err, blobstore.ErrUnauthorized):
		return exitDenied
	case errors.Is(err, blobstore.ErrUnreachable), errors.Is(err, blobstore.ErrPlainHTTP):
		// A refused plain-HTTP request: the registry cannot be reached
		// the only way allowed, HTTPS (see --plain-http).
		return exitUnreachable
	}
	return exitFailure
}

// oneLine keeps an error message on one line for the terminal.
// Text from a registry never reaches the terminal raw: characters that
// are not printable (escape sequences, bells) are shown escaped.
func oneLine(err error) string {
	return printable(strings.Join(strings.Fields(err.Error()), " "))
}

// printable escapes the runes of s that are not printable, as \u001b. It
// uses the tree's own rule (image.PrintableRune), so a tree name is always
// printed as the mount shows it.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if image.PrintableRune(r) {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, "\\u%04x", r)
	}
	return b.String()
}

// explain puts the class of an access error first in its message, with
// what to do about it: the registry's own text ("HTTP 401 Unauthorized:
// UNAUTHORIZED: authentication required") does not say where the
// credentials come from.
func explain(err error) error {
	if err == nil || !errors.Is(err, blobstore.ErrUnauthorized) || strings.Contains(err.Error(), blobstore.ErrUnauthorized.Error()) {
		return err
	}
	return prefixedError{"access denied (check the credentials for the registry: docker login, or $DOCKER_CONFIG/config.json)", err}
}

// prefixedError puts a sentence before an error's message; it unwraps to
// the error.
type prefixedError struct {
	prefix string
	error
}

func (e prefixedError) Error() string { return e.prefix + ": " + e.error.Error() }
func (e prefixedError) Unwrap() error { return e.error }
