package publish

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/image"
)

// ErrNoFiles: Options named no file at all. A command line alone is not an
// image.
var ErrNoFiles = errors.New("nothing to push: give at least one of --disk, --kernel, --initramfs, --squashfs, --uki or --iso")

// OptionError is an option with a value Push cannot use. Option is the name
// of the osimagefs push flag that sets it ("arch", "variant", ...), or
// "REFERENCE" for Options.Reference, the command's argument.
type OptionError struct {
	Option string
	Value  string
	Reason string
}

func (e *OptionError) Error() string {
	name := "--" + e.Option
	if e.Option == strings.ToUpper(e.Option) {
		name = e.Option // an argument, not a flag
	}
	return fmt.Sprintf("%s %q: %s", name, e.Value, e.Reason)
}

// FileError is a file of the image that cannot be used: it does not exist,
// cannot be opened, or is not a regular file. Role is also the name of the
// osimagefs push flag that gave the path (--disk, --kernel, ...), and the
// message names that flag.
type FileError struct {
	Role image.Role
	Path string
	Err  error
}

func (e *FileError) Error() string {
	err := e.Err
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in the message
	}
	return fmt.Sprintf("--%s %s: %v", e.Role, e.Path, err)
}

func (e *FileError) Unwrap() error { return e.Err }

// IsUsage reports whether err is about the options rather than the
// registry: ErrNoFiles, an *OptionError or a *FileError.
func IsUsage(err error) bool {
	var oe *OptionError
	var fe *FileError
	return errors.Is(err, ErrNoFiles) || errors.As(err, &oe) || errors.As(err, &fe)
}

// classify wraps a registry error with the blobstore sentinel that
// describes it, so that callers (and the exit status of the command) can
// tell "not found", "access denied" and "unreachable" apart.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		se := &blobstore.StatusError{Code: terr.StatusCode}
		if len(terr.Errors) > 0 {
			se.Detail = terr.Errors[0].Message
		}
		return statusError{status: se, err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var operr *net.OpError
	var nerr net.Error
	if errors.As(err, &operr) || errors.As(err, &nerr) {
		return fmt.Errorf("%w: %w", blobstore.ErrUnreachable, err)
	}
	return err
}

// isNotFound reports whether a registry error means "no such manifest".
func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == 404
}

// statusError is a registry error that also unwraps to the
// *blobstore.StatusError of its HTTP status (and so to ErrNotFound or
// ErrUnauthorized); its message is that of the registry error alone, which
// already names the status.
type statusError struct {
	status *blobstore.StatusError
	err    error
}

func (e statusError) Error() string   { return e.err.Error() }
func (e statusError) Unwrap() []error { return []error{e.status, e.err} }
