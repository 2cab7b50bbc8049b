package main

import (
	"fmt"
	"log/slog"
	"regexp"
)

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

// redactError is err with any credentials gone from its message.
func redactError(err error) error {
	if err == nil {
		return nil
	}
	return redactedError{err}
}
