package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// interruptedError is a command ended by SIGINT or SIGTERM before it was
// done (a mount before it was up). It exits 128 + the signal's number, as
// a shell reports a process killed by that signal. It unwraps to what the
// command returned when it gave up.
type interruptedError struct {
	sig syscall.Signal
	err error
}

func (e interruptedError) Error() string { return "interrupted by " + unix.SignalName(e.sig) }
func (e interruptedError) Unwrap() error { return e.err }

// withInterrupt returns ctx cancelled by the first SIGINT or SIGTERM, with
// an interruptedError as its cause. After that first signal, the signals
// get their default action again (a second Ctrl-C kills), unless a command
// catches them itself, as a mount does once it is up, to unmount. stop
// releases the signals.
func withInterrupt(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			cancel(interruptedError{sig: s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(nil) }
}

// interrupted returns err as an interruptedError when ctx was interrupted:
// whatever the command then returned (a cancelled request often looks like
// an unreachable registry), the interrupt is why it ended. A command that
// finished (nil) stays finished.
func interrupted(ctx context.Context, err error) error {
	ie, ok := context.Cause(ctx).(interruptedError)
	if err == nil || !ok {
		return err
	}
	ie.err = err
	return ie
}
