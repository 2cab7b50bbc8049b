package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A mount goes to the background by running itself again as a daemon in
// its own session. The daemon's stderr is a pipe to the first process
// until the tree is served, so that whatever it says before (the reason it
// failed) reaches the terminal or mount(8); then it writes readyMessage on
// a second pipe (fd daemonReadyFD), points its stderr at the log and runs
// on. The first process waits for one or the other and exits with the
// daemon's status.

// daemonEnv names the daemon's end of the readiness pipe; only the
// daemon sees it.
const daemonEnv = "OSIMAGEFS_DAEMON_READY_FD"

const (
	daemonReadyFD = 3
	readyMessage  = "READY\n"
)

// reportedError is a failure whose message is already on stderr (the
// daemon printed it); main prints nothing more and exits with code.
type reportedError struct{ code int }

func (e reportedError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// runBackground starts the daemon and waits until it serves the tree
// (nil) or fails (its status). SIGINT or SIGTERM before then stop it.
func runBackground(ctx context.Context) error {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	defer readyR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("start the daemon: %w", err)
	}
	defer errR.Close()
	// This very binary: by its path, so that the daemon's process name is
	// osimagefs (not "exe"), or /proc/self/exe if that path was replaced.
	// argv[0] stays, so a helper stays a helper.
	exe, err := os.Executable()
	if err != nil || strings.HasSuffix(exe, " (deleted)") {
		exe = "/proc/self/exe"
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        os.Args,
		Env:         append(os.Environ(), daemonEnv+"="+strconv.Itoa(daemonReadyFD)),
		Stderr:      errW,
		ExtraFiles:  []*os.File{readyW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	readyW.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("start the daemon: %w", err)
	}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(os.Stderr, errR)
		close(copied)
	}()
	// The daemon has its own session: a Ctrl-C reaches only this process,
	// which passes it on.
	stop := context.AfterFunc(ctx, func() {
		sig := syscall.SIGTERM
		if ie, ok := context.Cause(ctx).(interruptedError); ok {
			sig = ie.sig
		}
		_ = cmd.Process.Signal(sig)
	})
	defer stop()

	msg, _ := io.ReadAll(readyR) // EOF: the daemon is ready, or gone
	if string(msg) == readyMessage {
		if stop() {
			<-copied
			return cmd.Process.Release()
		}
		// Interrupted just as it became ready: the signal went on to the
		// daemon, which unmounts; say so rather than report a mount.
		_ = cmd.Wait()
		<-copied
		return context.Cause(ctx)
	}
	werr := cmd.Wait()
	<-copied
	switch code := cmd.ProcessState.ExitCode(); {
	case code == 0:
		return nil
	case code < 0:
		return fmt.Errorf("the daemon died before serving the tree: %w", werr)
	default:
		return reportedError{code}
	}
}

// daemonChild is the daemon's side of the readiness pipe.
type daemonChild struct{ ready *os.File }

// takeDaemon returns the readiness pipe if this process is the daemon,
// and hides it from any process the daemon starts.
func takeDaemon() *daemonChild {
	v, ok := os.LookupEnv(daemonEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(daemonEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	return &daemonChild{ready: os.NewFile(uintptr(fd), "ready")}
}

// serving tells the first process that the tree is served. From now on
// stderr goes to logOut (the log file) or nowhere.
func (d *daemonChild) serving(logOut *os.File) error {
	if logOut == nil {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", os.DevNull, err)
		}
		defer null.Close()
		logOut = null
	}
	var errs []error
	if err := unix.Dup3(int(logOut.Fd()), 2, 0); err != nil {
		errs = append(errs, fmt.Errorf("redirect stderr: %w", err))
	}
	if _, err := io.WriteString(d.ready, readyMessage); err != nil {
		errs = append(errs, fmt.Errorf("report readiness: %w", err))
	}
	errs = append(errs, d.ready.Close())
	return errors.Join(errs...)
}
