package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/blobstore"
)

func TestRedact(t *testing.T) {
	const secret = "hunter2-Secret"
	tests := []struct {
		in   string
		keep string // must survive
	}{
		{"parse reference \"alice:" + secret + "@127.0.0.1:5000/os/x:1\": could not parse reference", "127.0.0.1:5000/os/x:1"},
		{"GET https://alice:" + secret + "@registry.example.com/v2/: 401", "registry.example.com/v2/"},
		{"oci://bob:" + secret + "@10.0.0.1:5000/os/x", "10.0.0.1:5000/os/x"},
		{"https://" + secret + "@ghcr.io/os/x", "ghcr.io/os/x"},
		{"Authorization: Basic " + secret + "==", "Authorization"},
		{`headers map[Authorization:[Bearer ` + secret + `]]`, "headers"},
		{`"Authorization": "Basic ` + secret + `"`, "Authorization"},
		{"retry with Bearer " + secret + ".abc", "retry with"},
		{"Get \"https://cdn.example.com/blob?X-Amz-Signature=" + secret + "&X-Amz-Credential=" + secret + "&x=1\": EOF", "cdn.example.com/blob"},
		{"token url https://auth.example.com/token?scope=x&access_token=" + secret, "scope=x"},
	}
	for _, tc := range tests {
		got := redact(tc.in)
		if strings.Contains(got, secret) {
			t.Errorf("redact(%q) = %q: the secret is still there", tc.in, got)
		}
		if !strings.Contains(got, tc.keep) {
			t.Errorf("redact(%q) = %q: lost %q", tc.in, got, tc.keep)
		}
	}
	// Text without credentials is left alone.
	for _, s := range []string{
		"127.0.0.1:5000/os/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"ubuntu:22.04@sha256:0123456789abcdef",
		`WWW-Authenticate: Basic realm="registry"`,
		"read failed op=read path=amd64/virtualization/disk.img offset=1048576 err=\"HTTP 401 Unauthorized: UNAUTHORIZED: authentication required\"",
		"fetch https://registry.example.com/v2/os/x/blobs/sha256:abc: EOF",
	} {
		if got := redact(s); got != s {
			t.Errorf("redact(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestHasUserInfo(t *testing.T) {
	for ref, want := range map[string]bool{
		"alice:pw@127.0.0.1:5000/os/x:1":          true,
		"https://alice:pw@registry.example.com/x": true,
		"token@ghcr.io/os/x:1":                    true,
		"127.0.0.1:5000/os/x:1":                   false,
		"ghcr.io/os/x@sha256:0123456789abcdef":    false,
		"ubuntu:22.04@sha256:0123456789abcdef":    false,
		"os/x":                                    false,
	} {
		if got := hasUserInfo(ref); got != want {
			t.Errorf("hasUserInfo(%q) = %v, want %v", ref, got, want)
		}
	}
}

// TestLoggerRedacts logs credentials every way a line can carry them and
// checks none reaches the output, at debug level.
func TestLoggerRedacts(t *testing.T) {
	const secret = "s3cr3t-pw-value"
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: redactAttr}))
	u := &url.URL{Scheme: "https", Host: "r.example.com", Path: "/v2/", User: url.UserPassword("alice", secret)}
	log.Debug("request", "url", "https://alice:"+secret+"@r.example.com/v2/", "header", "Authorization: Basic "+secret)
	log.Info("failed", "err", fmt.Errorf("GET %s: boom", "https://alice:"+secret+"@r.example.com/v2/"))
	log.Warn("reference alice:"+secret+"@r.example.com/os/x", "u", stringer(u.String()))
	log.Error("x", slog.Group("g", "token", "Bearer "+secret+"abcdef"))
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("log output holds the secret:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "r.example.com") {
		t.Fatalf("redaction removed too much:\n%s", buf.String())
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// TestRedactedErrorKeepsExitStatus: redaction changes the text, not the
// class of the error.
func TestRedactedErrorKeepsExitStatus(t *testing.T) {
	inner := fmt.Errorf("fetch alice:pw@r.example.com/os/x:1: %w", &blobstore.StatusError{Code: 401})
	err := redactError(inner)
	if strings.Contains(err.Error(), "alice:pw") {
		t.Errorf("error text %q holds the credentials", err)
	}
	if code := exitCode(err); code != exitDenied {
		t.Errorf("exit status %d, want %d", code, exitDenied)
	}
	if code := exitCode(redactError(usageError{errors.New("x")})); code != exitUsage {
		t.Errorf("usage error: exit status %d, want %d", code, exitUsage)
	}
	if redactError(nil) != nil {
		t.Error("redactError(nil) != nil")
	}
}

// TestReferenceWithCredentialsRefused runs the commands with a reference
// holding user:password@: they must refuse it as bad usage, without
// echoing the password.
func TestReferenceWithCredentialsRefused(t *testing.T) {
	const secret = "pa55w0rd-xyz"
	for _, args := range [][]string{
		{"inspect", "alice:" + secret + "@127.0.0.1:1/os/x:1"},
		{"mount", "https://alice:" + secret + "@127.0.0.1:1/os/x:1", t.TempDir()},
		{"push", "alice:" + secret + "@127.0.0.1:1/os/x:1", "--arch", "amd64", "--cmdline", "x"},
	} {
		out, err := execute(args...)
		if err == nil {
			t.Fatalf("%v: no error", args)
		}
		if exitCode(err) != exitUsage {
			t.Errorf("%v: exit status %d, want %d (%v)", args, exitCode(err), exitUsage, err)
		}
		if strings.Contains(err.Error()+out, secret) {
			t.Errorf("%v: the password is echoed: %v %s", args, err, out)
		}
	}
}

func TestVersionText(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{"release", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			true, "osimagefs v1.2.3\ncommit " + rev + "\ngo1.26.1 "},
		{"modified work tree", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}},
			true, "osimagefs devel\ncommit " + rev + " (modified)\ngo1.26.1 "},
		{"no VCS", &debug.BuildInfo{GoVersion: "go1.26.1"}, true, "osimagefs devel\ncommit unknown\ngo1.26.1 "},
		{"no build info", nil, false, "osimagefs devel\ncommit unknown\n" + runtime.Version() + " "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionText(tc.info, tc.ok); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want it to start with %q", got, tc.want)
			}
		})
	}
}

// TestVersion: --version and the version command print the same three
// lines: version, commit, Go.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := execute(args...)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := out, buildVersion()+"\n"; got != want {
				t.Errorf("printed %q, want %q", got, want)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "osimagefs ") || !strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], runtime.Version()) {
				t.Errorf("printed %q, want version, commit and Go version lines", out)
			}
		})
	}
}

// execute runs the command line args in process and returns what it
// printed (stdout and stderr together) and its error.
func execute(args ...string) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}
