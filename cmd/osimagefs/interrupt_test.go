package main

import (
	"bytes"
	"errors"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptDuringResolution starts osimagefs against a registry that
// accepts connections but never answers, interrupts it while it waits,
// and checks that it says it was interrupted and exits 128 + the signal,
// not as if the registry were unreachable.
func TestInterruptDuringResolution(t *testing.T) {
	tests := []struct {
		name string
		args []string
		sig  syscall.Signal
		want int
		say  string
	}{
		{"mount, SIGINT", []string{"mount", "--cache-dir", "none"}, syscall.SIGINT, 130, "interrupted by SIGINT"},
		{"mount, SIGTERM", []string{"mount", "--cache-dir", "none"}, syscall.SIGTERM, 143, "interrupted by SIGTERM"},
		{"inspect, SIGINT", []string{"inspect"}, syscall.SIGINT, 130, "interrupted by SIGINT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 16)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted <- c // held open, never answered
				}
			}()
			args := append(tc.args, "--plain-http", ln.Addr().String()+"/os/x:1")
			if tc.args[0] == "mount" {
				args = append(args, t.TempDir())
			}
			cmd := command(args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			select {
			case c := <-accepted:
				defer c.Close()
			case <-time.After(30 * time.Second):
				t.Fatalf("osimagefs never connected to the registry; stderr: %s", stderr.String())
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				t.Fatal("osimagefs still running 30 s after the signal")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.want {
				t.Errorf("exit: %v, want status %d; stderr: %s", err, tc.want, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if last := lines[len(lines)-1]; !strings.Contains(last, tc.say) {
				t.Errorf("last line of stderr %q does not say %q", last, tc.say)
			}
		})
	}
}
