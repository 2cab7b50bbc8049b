package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// hostFlags are the mount flags for running as a host service: -o
// options, going to the background once the tree is served, where the
// log goes; and the state that goes with them (readiness, stopping).
type hostFlags struct {
	options    optionsFlag
	background bool
	logFile    string
	helper     bool // run as mount.fuse.osimagefs (hidden)
	sloppy     bool // mount -s (hidden)
	fake       bool // mount -f (hidden)

	daemon   *daemonChild // set in the background daemon
	logOut   *os.File     // the --log-file, once open
	stopOnce sync.Once
}

func (h *hostFlags) register(fl *pflag.FlagSet) {
	fl.VarP(&h.options, "options", "o", optionsHelp)
	fl.BoolVar(&h.background, "background", false, "once the tree is served, go on serving it in the background and exit 0 (or exit with the failure's status); the log then goes to syslog or --log-file")
	fl.StringVar(&h.logFile, "log-file", "", "append the log to this file instead of stderr (or syslog, in the background)")
	for name, v := range map[string]*bool{"mount-helper": &h.helper, "sloppy": &h.sloppy, "fake": &h.fake} {
		fl.BoolVar(v, name, false, "set by mount(8) as "+helperName)
		_ = fl.MarkHidden(name)
	}
}

// start applies the -o options and, for --background, hands the mount to
// a daemon and waits for it. done says the command has nothing more to do
// (then err is its result).
func (h *hostFlags) start(cmd *cobra.Command) (done bool, err error) {
	child := takeDaemon() // the first process has said everything below
	ignored, err := applyMountOptions(cmd.Flags(), h.options, mountOptionsMode{helper: h.helper, sloppy: h.sloppy})
	if err != nil {
		return true, err
	}
	if len(ignored) > 0 && child == nil {
		fmt.Fprintf(os.Stderr, "osimagefs: ignoring unknown mount options (sloppy mount): %s\n", strings.Join(ignored, ","))
	}
	if h.fake {
		return true, nil // mount -f: everything but the mount
	}
	if !h.background {
		return false, nil
	}
	if h.daemon = child; child != nil {
		return false, nil
	}
	return true, runBackground(cmd.Context())
}

// logger is where the mount logs: --log-file, else stderr in the
// foreground, else syslog (or nowhere, if there is none).
func (h *hostFlags) logger(g *globalFlags) (*slog.Logger, error) {
	lvl, err := g.level()
	if err != nil {
		return nil, err
	}
	opts := slog.HandlerOptions{Level: lvl, ReplaceAttr: redactAttr}
	switch {
	case h.logFile != "":
		f, err := os.OpenFile(h.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, usageError{fmt.Errorf("--log-file: %w", err)}
		}
		h.logOut = f
		return slog.New(slog.NewTextHandler(f, &opts)), nil
	case h.daemon != nil:
		sh, err := newSyslogHandler(opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "osimagefs: warning: no syslog daemon (/dev/log: %v): the daemon's log is discarded; use --log-file FILE\n", err)
			return slog.New(slog.DiscardHandler), nil
		}
		return slog.New(sh), nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &opts)), nil
}

// ready is called once the tree is served at dir: it tells the service
// manager (sd_notify) and, in the background, the waiting first process.
func (h *hostFlags) ready(dir string, log *slog.Logger) {
	if _, err := os.Stat(dir); err != nil {
		log.Warn("the mount point does not answer right after mounting", "mountpoint", dir, "err", err)
	}
	if err := sdNotify("READY=1"); err != nil {
		log.Warn("readiness not signalled to the service manager", "err", err)
	}
	if h.daemon != nil {
		if err := h.daemon.serving(h.logOut); err != nil {
			log.Warn("readiness not signalled to the starting process", "err", err)
		}
		log.Info("serving in the background", "pid", os.Getpid())
	}
}

// stopping tells the service manager, once, that the mount is going away.
func (h *hostFlags) stopping(log *slog.Logger) {
	h.stopOnce.Do(func() {
		if err := sdNotify("STOPPING=1"); err != nil {
			log.Debug("stopping not signalled to the service manager", "err", err)
		}
	})
}
