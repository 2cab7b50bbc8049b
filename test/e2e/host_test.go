package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// Started the way every FUSE file system is started: mount(8) with -t
// fuse.osimagefs and fstab, through the mount helper; --background; and
// systemd (the unit template, sd_notify).

// helperPath is where mount(8) (util-linux) looks for the helper of
// fuse.osimagefs; its search path is /sbin:/sbin/fs.d:/sbin/fs.
const helperPath = "/sbin/mount.fuse.osimagefs"

// installHelper links the mount helper to the binary under test for the
// test's life. An installed helper is put back afterwards.
func installHelper(t *testing.T) {
	t.Helper()
	fixture.RequireTools(t, "mount", "umount")
	backup := helperPath + ".e2e-backup"
	if _, err := os.Lstat(helperPath); err == nil {
		if err := os.Rename(helperPath, backup); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(binary, helperPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(helperPath)
		if _, err := os.Lstat(backup); err == nil {
			_ = os.Rename(backup, helperPath)
		}
	})
}

// noExitSleep keeps the race detector from sleeping a second at exit
// (its default), which would hide a process that returned too early.
const noExitSleep = "GORACE=atexit_sleep_ms=0"

// runTool runs a host tool (or osimagefs) and returns its combined output
// and status. Any osimagefs it starts exits without the race detector's
// sleep.
func runTool(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), noExitSleep)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s %q did not finish in 2 minutes:\n%s", name, args, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// daemonsServing lists the live processes (not zombies) with dir among
// their arguments: the daemons of that mount point.
func daemonsServing(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !hasArg(raw, dir) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func hasArg(cmdline []byte, arg string) bool {
	for _, a := range bytes.Split(cmdline, []byte{0}) {
		if string(a) == arg {
			return true
		}
	}
	return false
}

// oneDaemon is the pid of the one daemon serving dir.
func oneDaemon(t *testing.T, dir string) int {
	t.Helper()
	pids := daemonsServing(dir)
	if len(pids) != 1 {
		t.Fatalf("%d processes serve %s (%v), want exactly 1 daemon", len(pids), dir, pids)
	}
	return pids[0]
}

// waitGone waits until no daemon serves dir any more.
func waitGone(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(daemonsServing(dir)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %v still running 20 s after the unmount of %s", daemonsServing(dir), dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanupMount removes whatever a test left at dir: the mount, the daemon.
func cleanupMount(t *testing.T, dir string) {
	t.Cleanup(func() {
		if isMounted(dir) {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		for _, pid := range daemonsServing(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// requireServed checks, at once and without waiting, that the tree is at
// dir with the right bytes, as a read-only fuse.osimagefs mount.
func requireServed(t *testing.T, dir string, img pushed) {
	t.Helper()
	ms, err := osfs.MountsAt(dir)
	if err != nil || len(ms) != 1 {
		t.Fatalf("mounts at %s: %v, %v; want exactly one as soon as mount returns", dir, ms, err)
	}
	if ms[0].FSType != "fuse.osimagefs" || !strings.Contains(","+ms[0].Options+",", ",ro,") {
		t.Fatalf("mount at %s: type %s, options %s; want fuse.osimagefs, ro", dir, ms[0].FSType, ms[0].Options)
	}
	checkFiles(t, dir, img.expected)
}

// TestHostMountType mounts with mount -t fuse.osimagefs and a tag: the
// tree is served when mount returns, the daemon runs on in the background
// and logs to --log-file, and umount ends it.
func TestHostMountType(t *testing.T) {
	requireMountable(t)
	installHelper(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 8<<20)
	ref := reg.Host() + "/" + img.ref // host:port/os/small:1
	dir := t.TempDir()
	cleanupMount(t, dir)
	logFile := filepath.Join(t.TempDir(), "osimagefs.log")

	opts := "plain-http,cache-size=1GiB,allow_other,prefetch=none,log-level=debug,cache-dir=" + t.TempDir() + ",log-file=" + logFile
	out, code := runTool(t, "mount", "-t", "fuse.osimagefs", ref, dir, "-o", opts)
	if code != 0 {
		t.Fatalf("mount -t fuse.osimagefs: status %d:\n%s", code, out)
	}
	requireServed(t, dir, img)
	pid := oneDaemon(t, dir)

	out, code = runTool(t, "umount", dir)
	if code != 0 {
		t.Fatalf("umount: status %d:\n%s", code, out)
	}
	waitGone(t, dir)
	if isMounted(dir) {
		t.Fatal("still mounted after umount")
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"msg=mounted", "msg=\"serving in the background\" pid=" + strconv.Itoa(pid), "msg=unmounted"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("the log file does not say %q:\n%s", want, log)
		}
	}
	if bytes.Contains(log, []byte(raceReport)) {
		t.Fatalf("data race:\n%s", log)
	}
}

// TestHostMountFstab mounts an fstab entry (a digest reference) with
// mount MOUNTPOINT, from a temporary fstab (mount -T) so that the host's
// /etc/fstab is not touched.
func TestHostMountFstab(t *testing.T) {
	requireMountable(t)
	installHelper(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 8<<20)
	ref := reg.Host() + "/os/small@" + img.digest
	dir := t.TempDir()
	cleanupMount(t, dir)
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := fmt.Sprintf("# osimagefs\n%s %s fuse.osimagefs ro,_netdev,plain-http,nofail,x-systemd.requires=network-online.target,prefetch=none,cache-dir=%s 0 0\n", ref, dir, t.TempDir())
	if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runTool(t, "mount", "-T", fstab, dir)
	if code != 0 {
		t.Fatalf("mount -T %s %s: status %d:\n%s", fstab, dir, code, out)
	}
	requireServed(t, dir, img)
	oneDaemon(t, dir)
	if out, code := runTool(t, "umount", dir); code != 0 {
		t.Fatalf("umount: status %d:\n%s", code, out)
	}
	waitGone(t, dir)
}

// TestHostMountFailures: a mount that cannot be made fails with the
// reason and a status, from mount(8) and from the helper itself, and
// leaves neither a mount nor a daemon.
func TestHostMountFailures(t *testing.T) {
	requireMountable(t)
	installHelper(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 1<<20)
	ref := reg.Host() + "/" + img.ref
	missing := reg.Host() + "/os/missing:1"
	cache := "cache-dir=" + t.TempDir()
	for _, tc := range []struct {
		name     string
		ref      string
		opts     string
		wantMsg  string
		wantCode int // of the helper and of osimagefs mount
	}{
		{"unknown option", ref, "plain-http,bogus=1," + cache, `unknown mount option "bogus"`, 2},
		{"bad value", ref, "plain-http,cache-size=lots," + cache, `-o cache-size=lots`, 2},
		{"not found", missing, "plain-http," + cache, "404 Not Found", 3},
		{"no plain-http", ref, cache, "--plain-http", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cleanupMount(t, dir)
			out, code := runTool(t, "mount", "-t", "fuse.osimagefs", tc.ref, dir, "-o", tc.opts)
			if code == 0 || !strings.Contains(out, tc.wantMsg) {
				t.Fatalf("mount -t fuse.osimagefs -o %s: status %d, want nonzero and %q:\n%s", tc.opts, code, tc.wantMsg, out)
			}
			out, code = runTool(t, helperPath, tc.ref, dir, "-o", "rw,"+tc.opts)
			if code != tc.wantCode || !strings.Contains(out, tc.wantMsg) {
				t.Fatalf("%s: status %d, want %d and %q:\n%s", helperPath, code, tc.wantCode, tc.wantMsg, out)
			}
			stderr, code := runTool(t, binary, "mount", "--background", "-o", tc.opts, tc.ref, dir)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantMsg) {
				t.Fatalf("osimagefs mount --background: status %d, want %d and %q:\n%s", code, tc.wantCode, tc.wantMsg, stderr)
			}
			if isMounted(dir) || len(daemonsServing(dir)) > 0 {
				t.Fatalf("a failed mount left a mount (%v) or a daemon (%v)", isMounted(dir), daemonsServing(dir))
			}
		})
	}
	// rw: mount(8) adds it by itself, but osimagefs mount refuses it.
	_, stderr, code := runCLI(t, time.Minute, "mount", "-o", "rw,plain-http", ref, t.TempDir())
	if code != 2 || !strings.Contains(stderr, "-o rw: the mount is read-only") {
		t.Fatalf("osimagefs mount -o rw: status %d:\n%s", code, stderr)
	}
}

// TestHostMountBackground: osimagefs mount --background returns once the tree
// is served and leaves the daemon serving it; SIGTERM unmounts it.
func TestHostMountBackground(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 8<<20)
	dir := t.TempDir()
	cleanupMount(t, dir)
	logFile := filepath.Join(t.TempDir(), "log")
	stderr, code := runTool(t, binary, "mount", "--background", "--plain-http", "--prefetch", "none",
		"--cache-dir", t.TempDir(), "--log-file", logFile, reg.Host()+"/"+img.ref, dir)
	if code != 0 {
		t.Fatalf("osimagefs mount --background: status %d:\n%s", code, stderr)
	}
	requireServed(t, dir, img)
	if err := syscall.Kill(oneDaemon(t, dir), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitGone(t, dir)
	if isMounted(dir) {
		t.Fatal("still mounted after the daemon's exit on SIGTERM")
	}
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("msg=unmounting")) {
		t.Fatalf("the log does not show the unmount:\n%s", log)
	}
}

// unitPath is the shipped unit template.
func unitPath(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "dist", "systemd", "osimagefs@.service")
}

// unitForTest is the unit template with the binary under test in
// ExecStart, written as osimagefs@.service in a temporary directory.
func unitForTest(t *testing.T) (path string, unit string) {
	t.Helper()
	raw, err := os.ReadFile(unitPath(t))
	if err != nil {
		t.Fatal(err)
	}
	unit = strings.ReplaceAll(string(raw), "/usr/local/bin/osimagefs", binary)
	path = filepath.Join(t.TempDir(), "osimagefs@.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, unit
}

// unitCommands returns the Exec lines of unit, key ExecStartPre or
// ExecStart, with the variables of env expanded as systemd does: ${X} is
// one word, $X is split at white space. systemd's prefixes of the program
// ("-": its failure is ignored, and "@", ":", "+", "!") are dropped; the
// test still wants the command to succeed.
func unitCommands(t *testing.T, unit, key string, env map[string]string) [][]string {
	t.Helper()
	var cmds [][]string
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), key+"=")
		if !ok {
			continue
		}
		var argv []string
		for _, w := range strings.Fields(v) {
			switch {
			case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
				argv = append(argv, env[w[2:len(w)-1]])
			case strings.HasPrefix(w, "$"):
				argv = append(argv, strings.Fields(env[w[1:]])...)
			default:
				argv = append(argv, w)
			}
		}
		if len(argv) > 0 {
			argv[0] = strings.TrimLeft(argv[0], "-@:+!")
		}
		cmds = append(cmds, argv)
	}
	if len(cmds) == 0 {
		t.Fatalf("the unit has no %s", key)
	}
	return cmds
}

// TestHostMountSystemdUnit checks the unit template with systemd-analyze
// verify, then runs its commands as systemd would for Type=notify, with a
// real NOTIFY_SOCKET: READY=1 arrives once the tree is served (and never
// for a mount that fails), STOPPING=1 when it is stopped.
func TestHostMountSystemdUnit(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "systemd-analyze")
	path, unit := unitForTest(t)
	for _, name := range []string{"osimagefs@.service", "osimagefs@debian.service"} {
		out, code := runTool(t, "systemd-analyze", "verify", filepath.Join(filepath.Dir(path), name))
		if code != 0 || strings.TrimSpace(out) != "" {
			t.Fatalf("systemd-analyze verify %s: status %d, want 0 and no complaint:\n%s", name, code, out)
		}
	}
	if !regexp.MustCompile(`(?m)^Type=notify$`).MatchString(unit) {
		t.Fatal("the unit is not Type=notify")
	}

	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 8<<20)
	dir := filepath.Join(t.TempDir(), "srv", "os") // made by ExecStartPre
	cleanupMount(t, dir)
	env := map[string]string{
		"REFERENCE":  reg.Host() + "/" + img.ref,
		"MOUNTPOINT": dir,
		"OPTIONS":    "-o plain-http,prefetch=none,cache-dir=" + t.TempDir(),
	}
	for _, argv := range unitCommands(t, unit, "ExecStartPre", env) {
		if out, code := runTool(t, argv[0], argv[1:]...); code != 0 {
			t.Fatalf("ExecStartPre %q: status %d:\n%s", argv, code, out)
		}
	}
	start := unitCommands(t, unit, "ExecStart", env)[0]

	// A mount that fails says nothing to systemd and exits with its status.
	notify := listenNotify(t, dir)
	badArgs := append(append([]string{}, start[1:len(start)-2]...), reg.Host()+"/os/missing:1", dir)
	bad := exec.Command(start[0], badArgs...)
	bad.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
	if out, err := bad.CombinedOutput(); bad.ProcessState.ExitCode() != 3 {
		t.Fatalf("ExecStart of a missing image: %v, want status 3:\n%s", err, out)
	}
	if msgs := notify.messages(); len(msgs) != 0 {
		t.Fatalf("a mount that failed sent %q to systemd", msgs)
	}

	cmd := exec.Command(start[0], start[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("osimagefs stderr:\n%s", stderr.String())
		}
	}()
	select {
	case st := <-notify.states:
		if st.msg != "READY=1" {
			t.Fatalf("first message to systemd %q, want READY=1", st.msg)
		}
		if st.err != nil {
			t.Fatalf("READY=1 came before the tree was served: %v", st.err)
		}
	case err := <-exited:
		t.Fatalf("osimagefs exited before READY=1: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("no READY=1 in 2 minutes:\n%s", stderr.String())
	}
	checkFiles(t, dir, img.expected)

	_ = cmd.Process.Signal(syscall.SIGTERM) // systemctl stop
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM (TimeoutStopSec)")
	}
	if msgs := notify.messages(); len(msgs) != 1 || msgs[0] != "STOPPING=1" {
		t.Fatalf("after READY=1 systemd got %q, want just STOPPING=1", msgs)
	}
	if isMounted(dir) {
		t.Fatal("still mounted after the service stopped")
	}
}

// notifyListener is a NOTIFY_SOCKET. Each message is checked on arrival
// against the mount (err: why the tree is not served at that moment).
type notifyListener struct {
	path   string
	states chan notifyState
}

type notifyState struct {
	msg string
	err error
}

func listenNotify(t *testing.T, mountpoint string) *notifyListener {
	t.Helper()
	n := &notifyListener{path: filepath.Join(t.TempDir(), "notify"), states: make(chan notifyState, 16)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			msg := string(buf[:k])
			var why error
			if msg == "READY=1" {
				why = servedNow(mountpoint)
			}
			n.states <- notifyState{msg, why}
		}
	}()
	return n
}

// messages returns the messages that have arrived so far, waiting a
// little for those in flight.
func (n *notifyListener) messages() []string {
	var out []string
	for {
		select {
		case st := <-n.states:
			out = append(out, st.msg)
		case <-time.After(500 * time.Millisecond):
			return out
		}
	}
}

// servedNow says why the tree is not served at dir now, or nil.
func servedNow(dir string) error {
	ms, err := osfs.MountsAt(dir)
	if err != nil {
		return err
	}
	if len(ms) != 1 || ms[0].FSType != "fuse.osimagefs" {
		return fmt.Errorf("mounts at %s: %v, want one fuse.osimagefs", dir, ms)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("readdir %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.Name() == "amd64" {
			return nil
		}
	}
	return errors.New(dir + " has no amd64 directory")
}

// TestHostMountMakeInstall: make install puts the binary, the mount
// helper mount(8) looks for and the unit (pointing at the binary) under
// DESTDIR and PREFIX; make uninstall removes them.
func TestHostMountMakeInstall(t *testing.T) {
	fixture.RequireTools(t, "make", "go")
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	vars := []string{"-C", root, "DESTDIR=" + dest, "PREFIX=/opt/osimagefs"}
	if out, code := runTool(t, "make", append(vars, "install")...); code != 0 {
		t.Fatalf("make install: status %d:\n%s", code, out)
	}
	bin := filepath.Join(dest, "opt/osimagefs/bin/osimagefs")
	if out, code := runTool(t, bin, "version"); code != 0 {
		t.Fatalf("installed %s version: status %d:\n%s", bin, code, out)
	}
	if target, err := os.Readlink(filepath.Join(dest, "sbin/mount.fuse.osimagefs")); err != nil || target != "/opt/osimagefs/bin/osimagefs" {
		t.Fatalf("mount helper: link to %q (%v), want /opt/osimagefs/bin/osimagefs", target, err)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/osimagefs/lib/systemd/system/osimagefs@.service"))
	if err != nil || !bytes.Contains(unit, []byte("\nExecStart=/opt/osimagefs/bin/osimagefs mount ")) {
		t.Fatalf("installed unit (%v) does not run /opt/osimagefs/bin/osimagefs:\n%s", err, unit)
	}
	if out, code := runTool(t, "make", append(vars, "uninstall")...); code != 0 {
		t.Fatalf("make uninstall: status %d:\n%s", code, out)
	}
	for _, p := range []string{"opt/osimagefs/bin/osimagefs", "sbin/mount.fuse.osimagefs", "opt/osimagefs/lib/systemd/system/osimagefs@.service"} {
		if _, err := os.Lstat(filepath.Join(dest, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after make uninstall: %v, want it gone", p, err)
		}
	}
}
