package main

import (
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenGram is a unixgram socket in a temporary directory, and a read of
// its next datagram.
func listenGram(t *testing.T, name string) (*net.UnixConn, func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func TestSdNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := sdNotify("READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, want nothing done", err)
	}
	for _, abstract := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "notify")
		name, env := path, path
		if abstract {
			name, env = "\x00osimagefs-test-"+filepath.Base(filepath.Dir(path)), "@osimagefs-test-"+filepath.Base(filepath.Dir(path))
		}
		_, next := listenGram(t, name)
		t.Setenv("NOTIFY_SOCKET", env)
		for _, state := range []string{"READY=1", "STOPPING=1"} {
			if err := sdNotify(state); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != state {
				t.Fatalf("abstract=%v: got %q, want %q", abstract, got, state)
			}
		}
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := sdNotify("READY=1"); err == nil || !strings.Contains(err.Error(), "sd_notify READY=1") {
		t.Fatalf("to a socket that is not there: %v, want an error naming the message", err)
	}
}

func TestSyslogHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	_, next := listenGram(t, sock)
	old := dialSyslog
	t.Cleanup(func() { dialSyslog = old })
	dialSyslog = func() (*syslog.Writer, error) {
		return syslog.Dial("unixgram", sock, syslog.LOG_DAEMON|syslog.LOG_INFO, "osimagefs")
	}
	h, err := newSyslogHandler(slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: redactAttr})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	const secret = "hunter2-Secret"
	for _, tc := range []struct {
		log      func(msg string, args ...any)
		priority string // LOG_DAEMON (3<<3) + severity
	}{{log.Error, "<27>"}, {log.Warn, "<28>"}, {log.Info, "<30>"}, {log.Debug, "<31>"}} {
		tc.log("fetch failed", "url", "https://alice:"+secret+"@r.example/v2/")
		got := next()
		if !strings.HasPrefix(got, tc.priority) || !strings.Contains(got, "osimagefs") || !strings.Contains(got, `msg="fetch failed"`) {
			t.Errorf("syslog got %q, want priority %s, the tag and the message", got, tc.priority)
		}
		if strings.Contains(got, secret) || strings.Contains(got, "time=") {
			t.Errorf("syslog got %q: a credential or a second time stamp", got)
		}
	}
}
