package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// Security: credentials never leak, TLS is verified, the mount is
// read-only and private unless --allow-other.

// output is what one run of the binary printed.
type output struct {
	what           string
	stdout, stderr string
}

// leakPatterns match credentials whatever they are: an Authorization
// header, Basic or Bearer credentials, a URL or reference with user info.
var leakPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)authorization["']?\s*[:=]`),
	regexp.MustCompile(`(?i)\bbasic\s+[a-z0-9+/]{8,}=*`),
	regexp.MustCompile(`(?i)\bbearer\s+[a-z0-9._~+/-]{8,}`),
	regexp.MustCompile(`[^\s/@"']+:[^\s/@"']+@[a-zA-Z0-9.\-]+(:[0-9]+)?/`),
}

// checkNoSecrets fails the test if any output holds a secret or matches a
// leak pattern.
func checkNoSecrets(t *testing.T, outs []output, secrets ...string) {
	t.Helper()
	for _, o := range outs {
		for stream, text := range map[string]string{"stdout": o.stdout, "stderr": o.stderr} {
			for _, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("%s: %s holds the secret %q:\n%s", o.what, stream, s, text)
				}
			}
			for _, re := range leakPatterns {
				if m := re.FindString(text); m != "" {
					t.Errorf("%s: %s holds %q (pattern %s):\n%s", o.what, stream, m, re, text)
				}
			}
		}
	}
}

// writeDockerConfig writes a Docker config directory whose config.json
// holds the base64 auth for user:password at host, and returns it.
func writeDockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	auths := map[string]any{}
	if user != "" {
		auths[host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	}
	raw, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestSecurityCredentialsNeverLeak runs every command against a TLS
// registry with htpasswd basic auth, with credentials from a Docker config
// ($DOCKER_CONFIG) and debug logging, and provokes failures: a password
// rotated under a live mount (reads fail with EIO and are logged), a
// wrong password (exit 4, "access denied"), no credentials, and
// references with user:password@ in them (refused with exit 2). No output
// of any run may hold the password, the base64 auth string, an
// Authorization header or Basic/Bearer credentials, or a URL with user
// info.
func TestSecurityCredentialsNeverLeak(t *testing.T) {
	requireMountable(t)
	plain := registrytest.Start(t)
	img := pushSmallImage(t, plain.Host(), "os/private", 32<<20)
	const user = "osimagefs-robot"
	password := "S3cret-" + randomHex(12)
	wrongPassword := "Wr0ng-" + randomHex(12)
	newPassword := "R0tated-" + randomHex(12)
	reg := registrytest.StartSecure(t, registrytest.SecureOptions{Dir: plain.Dir(), TLS: true, Users: map[string]string{user: password}})
	host := reg.Host()
	ref := host + "/" + img.ref
	ca := reg.CA().File()
	b64 := func(pw string) string { return base64.StdEncoding.EncodeToString([]byte(user + ":" + pw)) }
	secrets := []string{password, wrongPassword, newPassword, b64(password), b64(wrongPassword), b64(newPassword)}

	good := writeDockerConfig(t, host, user, password)
	wrong := writeDockerConfig(t, host, user, wrongPassword)
	anonymous := writeDockerConfig(t, host, "", "")
	var outs []output
	run := func(what string, wantCode int, wantMsg string, args ...string) output {
		t.Helper()
		stdout, stderr, code := runCLI(t, 60*time.Second, args...)
		o := output{what: what, stdout: stdout, stderr: stderr}
		outs = append(outs, o)
		if code != wantCode {
			t.Errorf("%s: exit status %d, want %d\nstdout: %s\nstderr: %s", what, code, wantCode, stdout, stderr)
		}
		if wantMsg != "" {
			checkFailure(t, stderr, code, wantCode, wantMsg)
		}
		return o
	}
	mountDirs := []string{}
	newDir := func() string {
		d := t.TempDir()
		mountDirs = append(mountDirs, d)
		return d
	}

	t.Run("good credentials", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", good)
		o := run("inspect", 0, "", "inspect", "--log-level", "debug", "--ca-file", ca, ref)
		if !strings.Contains(o.stdout, "disk.img") {
			t.Errorf("inspect printed no disk.img:\n%s", o.stdout)
		}
		run("inspect --json", 0, "", "inspect", "--json", "--log-level", "debug", "--ca-file", ca, ref)

		kernel := filepath.Join(t.TempDir(), "vmlinuz")
		if err := os.WriteFile(kernel, fixture.RandomBytes(21, 1<<20+7), 0o644); err != nil {
			t.Fatal(err)
		}
		o = run("push", 0, "", "push", "--log-level", "debug", "--ca-file", ca, host+"/os/pushed:1",
			"--arch", "amd64", "--variant", "virtualization", "--kernel", kernel, "--cmdline", "console=ttyS0")
		if !strings.Contains(o.stdout, host+"/os/pushed@sha256:") {
			t.Errorf("push printed no pinned reference:\n%s", o.stdout)
		}
		run("inspect pushed", 0, "", "inspect", "--log-level", "debug", "--ca-file", ca, host+"/os/pushed:1")

		dir := newDir()
		maddr := freeAddr(t)
		m := launchMount(t, ref, dir, "--ca-file", ca, "--read-ahead", "0", "--metrics-addr", maddr)
		m.waitServing(t, 30*time.Second)
		small := map[string]expectedFile{}
		for p, e := range img.expected {
			if !strings.HasSuffix(p, "disk.img") {
				small[p] = e
			}
		}
		checkFiles(t, dir, small)
		disk := filepath.Join(dir, "amd64/virtualization/disk.img")
		src, err := os.ReadFile(img.expected["amd64/virtualization/disk.img"].path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(disk)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p := make([]byte, 1<<20)
		if _, err := f.ReadAt(p, 0); err != nil || !bytes.Equal(p, src[:len(p)]) {
			t.Fatalf("read of disk.img: %v (or wrong bytes)", err)
		}

		// Rotate the password under the live mount: reads of chunks not
		// yet fetched now fail, and the daemon logs why.
		if err := registrytest.WriteHtpasswd(reg.HtpasswdFile(), map[string]string{user: newPassword}); err != nil {
			t.Fatal(err)
		}
		_, err = f.ReadAt(p, int64(len(src))-int64(len(p)))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read after the password changed: %v, want EIO", err)
		}
		// The metrics and the status say why, without a secret.
		metrics := scrape(t, maddr)
		if !regexp.MustCompile(`(?m)^osimagefs_eio_total\{cause="unauthorized"\} [1-9]`).MatchString(metrics) {
			t.Errorf("the failed read is not counted as unauthorized:\n%s", grepLines(metrics, "osimagefs_eio_total"))
		}
		outs = append(outs, output{what: "/metrics", stdout: metrics})
		run("status --json", 0, "", "status", "--json", dir)
		if err := registrytest.WriteHtpasswd(reg.HtpasswdFile(), map[string]string{user: password}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := m.terminate(t); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
		if !strings.Contains(m.stderr.String(), "read failed") {
			t.Errorf("the failed read was not logged:\n%s", m.stderr.String())
		}
		outs = append(outs, output{what: "mount", stdout: m.stdout.String(), stderr: m.stderr.String()})
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", wrong)
		run("inspect, wrong password", 4, "access denied", "inspect", "--log-level", "debug", "--ca-file", ca, ref)
		dir := newDir()
		run("mount, wrong password", 4, "access denied", "mount", "--log-level", "debug", "--ca-file", ca, "--cache-dir", "none", ref, dir)
		if isMounted(dir) {
			t.Error("a refused mount left a mount behind")
		}
		kernel := filepath.Join(t.TempDir(), "vmlinuz")
		if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
			t.Fatal(err)
		}
		run("push, wrong password", 4, "access denied", "push", "--log-level", "debug", "--ca-file", ca, host+"/os/pushed:2", "--arch", "amd64", "--kernel", kernel)
	})

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", anonymous)
		run("inspect, anonymous", 4, "access denied", "inspect", "--log-level", "debug", "--ca-file", ca, ref)
	})

	t.Run("credentials in the reference", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", anonymous)
		for _, prefix := range []string{"", "https://", "oci://"} {
			r := prefix + user + ":" + password + "@" + ref
			what := prefix + "user:password@" // the test's own messages must not hold the password either
			run("inspect "+what, 2, "must not contain credentials", "inspect", "--log-level", "debug", "--ca-file", ca, r)
			run("mount "+what, 2, "must not contain credentials", "mount", "--log-level", "debug", "--ca-file", ca, r, newDir())
			run("push "+what, 2, "must not contain credentials", "push", "--log-level", "debug", "--ca-file", ca, r, "--arch", "amd64", "--cmdline", "x")
		}
	})

	all, overTLS, authorized := reg.Requests()
	t.Logf("registry: %d requests, %d over TLS, %d with credentials", all, overTLS, authorized)
	if authorized == 0 || overTLS != all {
		t.Errorf("registry saw %d requests, %d over TLS and %d with credentials: want credentials used, and only over TLS", all, overTLS, authorized)
	}
	checkNoSecrets(t, outs, secrets...)
	for _, d := range mountDirs {
		if isMounted(d) {
			t.Errorf("mount left at %s", d)
		}
	}
}

// TestTLSVerification serves a registry over HTTPS only, with a
// certificate from a test CA, on 127.0.0.2 (go-containerregistry would
// fall back to plain HTTP on 127.0.0.1 and localhost, but not on other
// loopback addresses). Without flags, inspect and mount must refuse it with an x509
// error and a non-zero exit; with the wrong CA too; --plain-http must not
// get through; --ca-file ca.pem and --insecure must work, over TLS.
func TestTLSVerification(t *testing.T) {
	requireMountable(t)
	plain := registrytest.Start(t)
	img := pushSmallImage(t, plain.Host(), "os/tls", 8<<20)
	reg := registrytest.StartSecure(t, registrytest.SecureOptions{Dir: plain.Dir(), TLS: true})
	ref := reg.Host() + "/" + img.ref
	otherCA, err := registrytest.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name    string
		args    []string
		wantMsg string
	}{
		{"inspect without flags", []string{"inspect", ref}, "x509: certificate signed by unknown authority"},
		{"mount without flags", []string{"mount", "--cache-dir", "none", ref, "DIR"}, "x509: certificate signed by unknown authority"},
		{"inspect with another CA", []string{"inspect", "--ca-file", otherCA.File(), ref}, "x509: certificate signed by unknown authority"},
		{"mount with another CA", []string{"mount", "--cache-dir", "none", "--ca-file", otherCA.File(), ref, "DIR"}, "x509: certificate signed by unknown authority"},
		{"inspect --plain-http", []string{"inspect", "--plain-http", ref}, ""},
		{"inspect with a CA file that holds no certificate", []string{"inspect", "--ca-file", notPEM, ref}, "no PEM certificate"},
		{"inspect with a missing CA file", []string{"inspect", "--ca-file", notPEM + ".absent", ref}, "no such file"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "DIR" {
					args[i] = dir
				}
			}
			before, _, _ := reg.Requests()
			_, stderr, code := runCLI(t, 60*time.Second, args...)
			if code == 0 {
				t.Fatalf("exit status 0, want a failure; stderr:\n%s", stderr)
			}
			last := lastLine(stderr)
			if !strings.HasPrefix(last, "osimagefs: ") {
				t.Errorf("last stderr line %q is not a one-line reason", last)
			}
			if tc.wantMsg != "" && !strings.Contains(last, tc.wantMsg) {
				t.Errorf("last stderr line %q, want it to mention %q", last, tc.wantMsg)
			}
			t.Logf("exit %d: %s", code, last)
			if after, _, _ := reg.Requests(); after != before {
				t.Errorf("%d requests reached the registry's handler: the client went on after a failed verification", after-before)
			}
			if isMounted(dir) {
				t.Error("left a mount behind")
			}
		})
	}
	if reg.RefusedConnections() == 0 {
		t.Error("the registry saw no refused TLS handshake: was TLS used at all?")
	}

	for _, flags := range [][]string{{"--ca-file", reg.CA().File()}, {"--insecure"}} {
		t.Run("works with "+flags[0], func(t *testing.T) {
			before, beforeTLS, _ := reg.Requests()
			stdout, stderr, code := runCLI(t, 60*time.Second, append(append([]string{"inspect"}, flags...), ref)...)
			if code != 0 {
				t.Fatalf("inspect %v: exit %d\n%s", flags, code, stderr)
			}
			if !strings.Contains(stdout, img.digest) {
				t.Errorf("inspect printed no digest %s:\n%s", img.digest, stdout)
			}
			dir := t.TempDir()
			m := startMount(t, ref, dir, flags...)
			checkFiles(t, dir, img.expected)
			if err := m.terminate(t); err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
			after, afterTLS, _ := reg.Requests()
			if after == before || afterTLS-beforeTLS != after-before {
				t.Errorf("%d requests, %d of them over TLS: want all over TLS", after-before, afterTLS-beforeTLS)
			}
		})
	}
}

// TestSecurityPlainHTTPOnlyWithFlag serves a plain-HTTP registry on
// 127.0.0.1, where go-containerregistry falls back to HTTP when HTTPS
// fails. Without --plain-http, inspect, mount and push must exit 5 with a
// last line naming --plain-http, and no request may reach the registry;
// with --plain-http they work.
func TestSecurityPlainHTTPOnlyWithFlag(t *testing.T) {
	requireMountable(t)
	plain := registrytest.Start(t)
	img := pushSmallImage(t, plain.Host(), "os/plain", 4<<20)
	reg := registrytest.StartSecure(t, registrytest.SecureOptions{Dir: plain.Dir(), IP: "127.0.0.1"})
	ref := reg.Host() + "/" + img.ref
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	for _, args := range [][]string{
		{"inspect", ref},
		{"mount", "--cache-dir", "none", ref, dir},
		{"push", reg.Host() + "/os/plain:2", "--arch", "amd64", "--kernel", kernel},
	} {
		t.Run(args[0]+" without --plain-http", func(t *testing.T) {
			_, stderr, code := runCLI(t, 60*time.Second, args...)
			checkFailure(t, stderr, code, 5, "--plain-http")
			t.Logf("exit %d: %s", code, lastLine(stderr))
			if all, _, _ := reg.Requests(); all != 0 {
				t.Errorf("%d requests reached the plain-HTTP registry without --plain-http", all)
			}
			if isMounted(dir) {
				t.Error("left a mount behind")
			}
		})
	}

	t.Run("with --plain-http", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, 60*time.Second, "inspect", "--plain-http", ref)
		if code != 0 || !strings.Contains(stdout, img.digest) {
			t.Fatalf("inspect --plain-http: exit %d\n%s%s", code, stdout, stderr)
		}
		m := startMount(t, ref, dir, "--plain-http")
		checkFiles(t, dir, img.expected)
		if err := m.terminate(t); err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestReadOnlyMount checks that every way of changing the tree fails with
// EROFS (root included), that the mount carries ro and
// default_permissions, that allow_other is there only with --allow-other,
// and that another user (nobody) cannot read the mount without it and can
// with it.
func TestReadOnlyMount(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/ro", 4<<20)
	ref := reg.Host() + "/" + img.ref
	const kernel = "amd64/virtualization/kernel"

	private := sharedDir(t)
	startMount(t, ref, private, "--plain-http")

	t.Run("changes fail with EROFS", func(t *testing.T) {
		d := filepath.Join(private, "amd64/virtualization")
		file := filepath.Join(d, "kernel")
		doc := filepath.Join(d, "manifest.json")
		ops := []struct {
			name string
			op   func() error
		}{
			{"open O_WRONLY", func() error { return openClose(file, os.O_WRONLY) }},
			{"open O_RDWR", func() error { return openClose(file, os.O_RDWR) }},
			{"open O_WRONLY|O_APPEND", func() error { return openClose(file, os.O_WRONLY|os.O_APPEND) }},
			{"open O_RDONLY|O_TRUNC", func() error { return openClose(file, os.O_RDONLY|os.O_TRUNC) }},
			{"open O_RDWR a document", func() error { return openClose(doc, os.O_RDWR) }},
			{"create a file", func() error { return openClose(filepath.Join(d, "new"), os.O_CREATE|os.O_WRONLY) }},
			{"create at the root", func() error { return openClose(filepath.Join(private, "new"), os.O_CREATE|os.O_EXCL|os.O_RDONLY) }},
			{"truncate", func() error { return os.Truncate(file, 0) }},
			{"chmod", func() error { return os.Chmod(file, 0o777) }},
			{"chown", func() error { return os.Chown(file, 65534, 65534) }},
			{"utimes", func() error { return os.Chtimes(file, time.Now(), time.Now()) }},
			{"mkdir", func() error { return os.Mkdir(filepath.Join(d, "dir"), 0o755) }},
			{"rmdir", func() error { return syscall.Rmdir(d) }},
			{"unlink", func() error { return syscall.Unlink(file) }},
			{"rename a file", func() error { return os.Rename(file, filepath.Join(d, "kernel2")) }},
			{"rename a directory", func() error { return os.Rename(d, filepath.Join(private, "amd64/other")) }},
			{"symlink", func() error { return os.Symlink("kernel", filepath.Join(d, "link")) }},
			{"hard link", func() error { return os.Link(file, filepath.Join(d, "link")) }},
			{"mkfifo", func() error { return syscall.Mkfifo(filepath.Join(d, "fifo"), 0o644) }},
			{"setxattr", func() error { return syscall.Setxattr(file, "user.test", []byte("x"), 0) }},
		}
		for _, o := range ops {
			if err := o.op(); !errors.Is(err, syscall.EROFS) {
				t.Errorf("%s: %v, want EROFS (read-only file system)", o.name, err)
			}
		}
		if got, want := sumFile(t, filepath.Join(private, kernel)), expectedSum(t, img.expected[kernel]); got != want {
			t.Errorf("kernel changed: sha256 %s, want %s", got, want)
		}
	})

	t.Run("mount options without --allow-other", func(t *testing.T) {
		opts, super := mountOptions(t, private)
		if !opts["ro"] {
			t.Errorf("mount options %v lack ro", opts)
		}
		if !super["default_permissions"] {
			t.Errorf("super options %v lack default_permissions", super)
		}
		if super["allow_other"] {
			t.Errorf("super options %v have allow_other without --allow-other", super)
		}
	})

	t.Run("another user cannot read without --allow-other", func(t *testing.T) {
		requireSetpriv(t)
		out, err := asNobody("cat", filepath.Join(private, kernel))
		if err == nil {
			t.Fatalf("nobody read the private mount (%d bytes)", len(out))
		}
		if !strings.Contains(string(out), "Permission denied") {
			t.Errorf("nobody's read failed with %v: %s; want Permission denied", err, out)
		}
		out, err = asNobody("ls", private)
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Errorf("nobody listed the private mount: %v %s", err, out)
		}
	})

	shared := sharedDir(t)
	startMount(t, ref, shared, "--plain-http", "--allow-other")

	t.Run("mount options with --allow-other", func(t *testing.T) {
		opts, super := mountOptions(t, shared)
		if !opts["ro"] || !super["default_permissions"] || !super["allow_other"] {
			t.Errorf("options %v, super options %v: want ro, default_permissions and allow_other", opts, super)
		}
	})

	t.Run("another user can read with --allow-other, not write", func(t *testing.T) {
		requireSetpriv(t)
		out, err := asNobody("cat", filepath.Join(shared, kernel))
		if err != nil {
			t.Fatalf("nobody could not read with --allow-other: %v", err)
		}
		if got, want := sha256Hex(out), expectedSum(t, img.expected[kernel]); got != want {
			t.Errorf("nobody read sha256 %s, want %s", got, want)
		}
		out, err = asNobody("sh", "-c", "echo x >> "+filepath.Join(shared, kernel))
		if err == nil || !strings.Contains(string(out), "Read-only file system") {
			t.Errorf("nobody's append: %v %s; want Read-only file system", err, out)
		}
	})
}

// sharedDir is an empty directory that other users can reach (t.TempDir's
// parents are private to root), removed at the end of the test.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "osimagefs-e2e-shared-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the mount's own cleanup.
	t.Cleanup(func() {
		if !isMounted(d) {
			os.Remove(d)
		}
	})
	return d
}

func openClose(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0o644)
	if err == nil {
		f.Close()
	}
	return err
}

// mountOptions returns the per-mount options and the super options of
// the mount at dir, from /proc/self/mountinfo.
func mountOptions(t *testing.T, dir string) (map[string]bool, map[string]bool) {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != dir {
			continue
		}
		opts, super := map[string]bool{}, map[string]bool{}
		for _, o := range strings.Split(f[5], ",") {
			opts[o] = true
		}
		for i, x := range f {
			if x == "-" && i+3 < len(f) {
				if !strings.HasPrefix(f[i+1], "fuse") {
					t.Errorf("file system type %s, want fuse.*", f[i+1])
				}
				for _, o := range strings.Split(f[i+3], ",") {
					super[o] = true
				}
			}
		}
		return opts, super
	}
	t.Fatalf("%s is not in /proc/self/mountinfo", dir)
	return nil, nil
}

func requireSetpriv(t *testing.T) {
	t.Helper()
	fixture.RequireTools(t, "setpriv")
}

// asNobody runs a command as nobody (uid and gid 65534, no groups) and
// returns its combined output.
func asNobody(args ...string) ([]byte, error) {
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
