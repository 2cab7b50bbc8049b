package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/osimagefs/osimagefs/blobstore"
	osfs "github.com/osimagefs/osimagefs/fs"
)

// TestExitStatusOfMountFailures: FUSE missing and an unusable mount point
// are told apart; a mount failure of neither kind is not blamed on the
// mount point.
func TestExitStatusOfMountFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"FUSE unavailable", fmt.Errorf("x: %w", osfs.ErrFUSEUnavailable), exitFUSEUnavailable},
		{"mount point, from fs", fmt.Errorf("x: %w", osfs.ErrMountpoint), exitBadMountpoint},
		{"mount point, from checkMountpoint", mountpointError{errors.New("x")}, exitBadMountpoint},
		{"other mount failure", errors.New("mount at /mnt: fusermount exited with code 256"), exitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// TestInterrupted: once a signal cancelled the context, a failure is the
// interrupt's, whatever it looks like; without one, errors keep their class.
func TestInterrupted(t *testing.T) {
	unreachable := fmt.Errorf("%w: dial tcp: operation was canceled", blobstore.ErrUnreachable)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(interruptedError{sig: syscall.SIGINT})
	if err := interrupted(ctx, unreachable); exitCode(err) != 130 || err.Error() != "interrupted by SIGINT" || !errors.Is(err, blobstore.ErrUnreachable) {
		t.Errorf("interrupted: %v, exit %d; want 130, \"interrupted by SIGINT\", wrapping the failure", err, exitCode(err))
	}
	if err := interrupted(ctx, nil); err != nil {
		t.Errorf("a command that finished after the signal: %v", err)
	}
	if err := interrupted(context.Background(), unreachable); exitCode(err) != exitUnreachable {
		t.Errorf("not interrupted: exit %d, want %d", exitCode(err), exitUnreachable)
	}
}
