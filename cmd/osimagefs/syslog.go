package main

import (
	"log/slog"
	"log/syslog"
	"strings"
)

// dialSyslog connects to the local syslog daemon (/dev/log, which
// journald also serves). A variable so that tests can point it elsewhere.
var dialSyslog = func() (*syslog.Writer, error) {
	return syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "osimagefs")
}

// newSyslogHandler is a slog handler that sends each record to syslog as
// one text line, at the priority of its level. The time is syslog's.
func newSyslogHandler(opts slog.HandlerOptions) (slog.Handler, error) {
	w, err := dialSyslog()
	if err != nil {
		return nil, err
	}
	replace := opts.ReplaceAttr
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		if replace != nil {
			return replace(groups, a)
		}
		return a
	}
	return slog.NewTextHandler(syslogWriter{w}, &opts), nil
}

// syslogWriter writes one text-handler line (one record) to syslog.
type syslogWriter struct{ w *syslog.Writer }

func (s syslogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	var err error
	switch {
	case strings.HasPrefix(line, "level=ERROR"):
		err = s.w.Err(line)
	case strings.HasPrefix(line, "level=WARN"):
		err = s.w.Warning(line)
	case strings.HasPrefix(line, "level=DEBUG"):
		err = s.w.Debug(line)
	default:
		err = s.w.Info(line)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
