package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/osimagefs/osimagefs/blobstore"
)

// globalFlags are shared by every command.
type globalFlags struct {
	logLevel string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "osimagefs",
		Short: "Mount an OS image from an OCI registry as a lazy, read-only file tree",
		Long: `osimagefs shows an operating-system image stored in an OCI registry
(disk image, kernel, initramfs, squashfs, cmdline, UKI, ISO) as plain files,
and fetches the bytes of a file only when something reads them.

A hypervisor can boot straight from the mounted kernel and disk.img, an
engineer can ls, cat and loop-mount, and nobody waits for gigabytes first.

Credentials come from the Docker config (~/.docker/config.json,
$DOCKER_CONFIG, credential helpers); without them access is anonymous.

Exit status: 0 success, 1 other failure, 2 bad usage or input,
3 reference not found, 4 access denied, 5 registry unreachable,
6 not an OS image, 7 mount point unusable.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log verbosity: debug, info, warn or error (logs go to stderr)")
	root.AddCommand(newMountCmd(g), newInspectCmd(g), newPushCmd(g))
	root.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		// Every command takes a REFERENCE first.
		if len(args) > 0 && hasUserInfo(args[0]) {
			return usageError{errors.New("REFERENCE must not contain credentials (user:password@): " +
				"log in with docker login, or put them in a Docker config ($DOCKER_CONFIG/config.json)")}
		}
		return nil
	}
	for _, c := range root.Commands() {
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error { return redactError(explain(run(cmd, args))) }
		}
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	return root
}

// logger builds the stderr handler for the chosen level.
func (g *globalFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(g.logLevel))); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl, ReplaceAttr: redactAttr})), nil
}

// Credentials must never reach the terminal, whatever the log level: not
// in log lines, not in the final error. The registry code never puts them
// there on purpose; the filters below are the backstop for text that
// echoes what it was given (a reference with user:password@ in it, a URL
// with user info, a pre-signed redirect URL, an Authorization header).
var (
	// scheme://user:password@host -> scheme://REDACTED@host
	reURLUserInfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@"'<>]+@`)
	// user:password@host/repo (a reference) -> REDACTED@host/repo. A digest
	// (repo@sha256:...) has no slash after the @, so it is left alone.
	reRefUserInfo = regexp.MustCompile(`[^\s/@"'<>=]+@([a-zA-Z0-9.\-]+(?::[0-9]+)?/)`)
	// Authorization: <scheme> <credentials>, in headers or dumps of them.
	reAuthHeader = regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*\[?["']?)(?:(?:basic|bearer)\s+)?[^\s"',\]]+`)
	// Basic/Bearer credentials on their own.
	reAuthScheme = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[a-z0-9+/._~-]{8,}=*`)
	// Secrets in query strings (tokens, pre-signed URL signatures).
	reQuerySecret = regexp.MustCompile(`(?i)([?&](?:access_token|refresh_token|token|password|passwd|pass|secret|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)=)[^&\s"'<>]+`)
)

// redact removes credentials from s.
func redact(s string) string {
	s = reURLUserInfo.ReplaceAllString(s, "${1}REDACTED@")
	s = reRefUserInfo.ReplaceAllString(s, "REDACTED@${1}")
	s = reAuthHeader.ReplaceAllString(s, "${1}REDACTED")
	s = reAuthScheme.ReplaceAllString(s, "${1} REDACTED")
	s = reQuerySecret.ReplaceAllString(s, "${1}REDACTED")
	return s
}

// hasUserInfo reports whether a reference carries credentials: user
// info before the registry host, with or without a URL scheme.
func hasUserInfo(ref string) bool {
	return reURLUserInfo.MatchString(ref) || reRefUserInfo.MatchString(ref)
}

// redactAttr is the log handler's ReplaceAttr: string values, errors and
// other values printed as text lose any credentials.
func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; v.Kind() {
	case slog.KindString:
		if r := redact(v.String()); r != v.String() {
			a.Value = slog.StringValue(r)
		}
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		default:
			return a
		}
		if r := redact(s); r != s {
			a.Value = slog.StringValue(r)
		}
	}
	return a
}

// redactedError is an error whose message has lost any credentials; it
// unwraps to the original, so exit statuses still follow its class.
type redactedError struct{ error }

func (e redactedError) Error() string { return redact(e.error.Error()) }
func (e redactedError) Unwrap() error { return e.error }

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

func redactError(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}
