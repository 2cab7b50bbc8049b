package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// Process faults: a daemon that is killed, unmounted under load, or read
// by many readers at once (the binary is built with -race).

// raceReport is what the race detector prints for each data race.
const raceReport = "WARNING: DATA RACE"

// TestProcessKilledDaemonLeavesDeadMountThatIsCleared kills the daemon with
// SIGKILL, checks that it leaves a dead mount ("transport endpoint is not
// connected"), and that mounting again on the same mount point clears it,
// says so on stderr, and serves the right bytes from a single mount.
func TestProcessKilledDaemonLeavesDeadMountThatIsCleared(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := pushSmallImage(t, reg.Host(), "os/small", 24<<20)
	ref := reg.Host() + "/" + img.ref
	dir := t.TempDir()

	first := startMount(t, ref, dir, "--plain-http")
	kernel := "amd64/virtualization/kernel"
	checkFiles(t, dir, map[string]expectedFile{kernel: img.expected[kernel]})
	// Keep a file open across the kill, as a hypervisor would (unread, so
	// that the page cache cannot answer for the dead daemon).
	held, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-first.done; err == nil {
		t.Fatal("a daemon killed with SIGKILL exited 0")
	} else {
		first.done <- err
	}

	// The dead mount: still in the mount table, and everything that asks
	// the daemon fails with ENOTCONN. (stat may still succeed: the kernel
	// answers it from attributes cached while the daemon lived.)
	if !isMounted(dir) {
		t.Fatal("the killed daemon's mount disappeared by itself; the test cannot check that a dead mount is cleared")
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("statfs of the dead mount point: %v, want ENOTCONN (transport endpoint is not connected)", err)
	}
	if _, err := os.ReadDir(dir); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("readdir of the dead mount point: %v, want ENOTCONN", err)
	}
	if _, err := held.ReadAt(make([]byte, 4096), 0); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("read of a file open across the kill: %v, want ENOTCONN or ECONNABORTED", err)
	}

	second := launchMount(t, ref, dir, "--plain-http")
	second.waitServing(t, 30*time.Second)
	stderr := second.stderr.String()
	if !strings.Contains(stderr, "cleared a dead mount") {
		t.Fatalf("stderr does not say the dead mount was cleared:\n%s", stderr)
	}
	if n := mountCount(dir); n != 1 {
		t.Fatalf("%d mounts at %s, want exactly 1 (the dead one detached, the new one on top of nothing)", n, dir)
	}
	if _, err := held.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("a file opened on the dead mount reads again: it should stay dead")
	}
	checkFiles(t, dir, img.expected)

	if err := second.terminate(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, second.stderr.String())
	}
	if isMounted(dir) {
		t.Fatal("mount left behind after SIGTERM")
	}
	if strings.Contains(second.stderr.String(), raceReport) {
		t.Fatalf("data race:\n%s", second.stderr.String())
	}
}

// TestProcessUnmountWithReadersInFlight sends SIGTERM while 64 readers
// wait on a slow registry (toxiproxy: latency and a bandwidth limit, so the
// reads are really in flight in the daemon). The readers must all end,
// each read with the right bytes or an error, and the daemon must exit 0
// within 10 s, leaving no mount behind.
func TestProcessUnmountWithReadersInFlight(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	const diskSize = 64 << 20
	img := pushSmallImage(t, reg.Host(), "os/slow", diskSize)
	toxi := registrytest.NewToxiProxy(t, reg.Host())
	dir := t.TempDir()
	m := startMount(t, toxi.Host()+"/"+img.ref, dir, "--plain-http", "--read-ahead", "0", "--read-timeout", "5m")
	// Slow enough that 64 readers wanting different chunks (1 MiB each,
	// at most 8 range requests at a time) wait for tens of seconds.
	toxi.AddLatency(200)
	toxi.AddBandwidth(1024)

	src, err := os.ReadFile(img.expected["amd64/virtualization/disk.img"].path)
	if err != nil {
		t.Fatal(err)
	}
	const readers = 64
	var (
		inflight, completed, wrong atomic.Int64
		errsMu                     sync.Mutex
		errs                       = map[string]int{}
		wg                         sync.WaitGroup
	)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(filepath.Join(dir, "amd64/virtualization/disk.img"))
			if err != nil {
				errsMu.Lock()
				errs["open: "+errnoName(err)]++
				errsMu.Unlock()
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			// Each reader starts in a chunk of its own, so nothing is cached.
			off := int64(i) * (diskSize / readers)
			for {
				p := make([]byte, 64<<10)
				inflight.Add(1)
				n, err := f.ReadAt(p, off)
				inflight.Add(-1)
				if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
					errsMu.Lock()
					errs[errnoName(err)]++
					errsMu.Unlock()
					return
				}
				if !bytes.Equal(p[:n], src[off:off+int64(n)]) {
					wrong.Add(1)
				}
				completed.Add(1)
				off = rng.Int64N(diskSize - int64(len(p)))
			}
		}()
	}

	// Wait until every reader is blocked in a read the daemon has not
	// answered, then a little more.
	deadline := time.Now().Add(20 * time.Second)
	for inflight.Load() < readers && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	atSignal, doneBefore := inflight.Load(), completed.Load()
	t.Logf("at SIGTERM: %d reads in flight, %d completed", atSignal, doneBefore)
	if atSignal < readers*3/4 {
		t.Fatalf("only %d of %d readers were in flight at SIGTERM: the registry is not slow enough for this test", atSignal, readers)
	}

	start := time.Now()
	exitErr := m.terminate(t)
	took := time.Since(start)
	t.Logf("daemon exited %v after %s", exitErr, took.Round(time.Millisecond))
	if exitErr != nil {
		t.Errorf("exit status after SIGTERM: %v, want 0", exitErr)
	}
	if took > 10*time.Second {
		t.Errorf("daemon took %s to exit after SIGTERM, want < 10 s", took)
	}

	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("readers still blocked 10 s after the daemon exited (%d in flight)", inflight.Load())
	}
	t.Logf("readers ended: %d reads completed in all, errors %v", completed.Load(), errs)
	if wrong.Load() != 0 {
		t.Errorf("%d reads returned wrong bytes", wrong.Load())
	}
	if isMounted(dir) {
		t.Error("mount left behind")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("mount point unusable after the daemon exited: %v", err)
	}
	stderr := m.stderr.String()
	if strings.Contains(stderr, raceReport) {
		t.Errorf("data race in the daemon:\n%s", stderr)
	}
	if !strings.Contains(stderr, "msg=unmounted") {
		t.Errorf("no \"unmounted\" line on stderr:\n%s", stderr)
	}
}

// TestProcessConcurrentReadersNoRace runs 64 readers over every file of the
// multi-arch seed image at random offsets and lengths (and some whole-file
// streams, to drive read-ahead), against the daemon built with -race, with
// small caches so chunks are evicted and fetched again while a full
// prefetch competes. Every byte read must match its source, the daemon's
// stderr must hold no race report, and it all must finish before a
// deadline (no deadlock); then the daemon must exit 0.
func TestProcessConcurrentReadersNoRace(t *testing.T) {
	requireMountable(t)
	if out, err := exec.Command("go", "version", "-m", binary).Output(); err != nil || !strings.Contains(string(out), "-race=true") {
		t.Fatalf("the daemon under test is not built with -race (go version -m: %v), so this test cannot see races:\n%s", err, out)
	}
	s := buildSources(t)
	reg := registrytest.Start(t)
	img := pushSeedIndex(t, reg.Host(), s)
	dir := t.TempDir()
	m := startMount(t, reg.Host()+"/"+img.ref, dir, "--plain-http",
		"--chunk-size", "256KiB", "--memory-cache", "4MiB", "--cache-size", "48MiB",
		"--read-ahead", "4MiB", "--prefetch", "all", "--parallel", "8")

	type file struct {
		path string
		size int64
		src  io.ReaderAt
	}
	var files []file
	for p, e := range img.expected {
		f := file{path: filepath.Join(dir, p)}
		if e.content != nil {
			f.src, f.size = bytes.NewReader(e.content), int64(len(e.content))
		} else {
			sf, err := os.Open(e.path)
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			st, err := sf.Stat()
			if err != nil {
				t.Fatal(err)
			}
			f.src, f.size = sf, st.Size()
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })

	// Half the readers share one open file per path (concurrent reads on
	// one handle), the others open the file for every read.
	shared := make([]*os.File, len(files))
	for i, f := range files {
		fh, err := os.Open(f.path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		shared[i] = fh
	}

	const readers, readsEach = 64, 40
	var verified, reads atomic.Int64
	failures := make(chan string, readers*readsEach)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			for j := range readsEach {
				k := rng.IntN(len(files))
				f := files[k]
				var err error
				if i%2 == 1 {
					err = readSharedAndCompare(shared[k], f.path, f.src, f.size, rng)
				} else {
					err = readAndCompare(f.path, f.src, f.size, rng, i%16 == 0 && j%10 == 0)
				}
				if err != nil {
					failures <- err.Error()
					continue
				}
				reads.Add(1)
				verified.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(4 * time.Minute):
		// Ask the Go runtime for a goroutine dump, which shows the deadlock.
		_ = m.cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
		t.Fatalf("readers not done after 4 minutes (%d reads done): deadlock?\n%s", reads.Load(), tail(m.stderr.String(), 20000))
	}
	close(failures)
	n := 0
	for f := range failures {
		if n++; n <= 10 {
			t.Error(f)
		}
	}
	if n > 10 {
		t.Errorf("... %d failed reads in all", n)
	}
	t.Logf("%d readers: %d reads verified in %s", readers, verified.Load(), time.Since(start).Round(time.Millisecond))

	if err := m.terminate(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	stderr := m.stderr.String()
	if strings.Contains(stderr, raceReport) {
		t.Fatalf("data race in the daemon:\n%s", stderr)
	}
	for _, bad := range []string{"panic:", "fatal error:"} {
		if strings.Contains(stderr, bad) {
			t.Fatalf("daemon stderr holds %q:\n%s", bad, tail(stderr, 20000))
		}
	}
}

// readSharedAndCompare reads a random range of an open file and compares
// it with src.
func readSharedAndCompare(f *os.File, path string, src io.ReaderAt, size int64, rng *rand.Rand) error {
	if size == 0 {
		return nil
	}
	off := rng.Int64N(size)
	n := 1 + rng.Int64N(min(256<<10, size-off))
	got, want := make([]byte, n), make([]byte, n)
	k, err := f.ReadAt(got, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s (shared): read %d at %d: %w", path, n, off, err)
	}
	if int64(k) != n {
		return fmt.Errorf("%s (shared): read %d at %d: got %d bytes", path, n, off, k)
	}
	if _, err := src.ReadAt(want, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s (shared): read %d at %d: wrong bytes", path, n, off)
	}
	return nil
}

// readAndCompare opens path, reads a random range (or, with whole, the
// whole file sequentially in 128 KiB reads) and compares with src.
func readAndCompare(path string, src io.ReaderAt, size int64, rng *rand.Rand, whole bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if whole {
		got, err := io.ReadAll(io.LimitReader(f, 32<<20))
		if err != nil {
			return fmt.Errorf("%s: stream: %w", path, err)
		}
		want := make([]byte, len(got))
		if _, err := src.ReadAt(want, 0); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: stream of %d bytes: wrong bytes", path, len(got))
		}
		return nil
	}
	if size == 0 {
		return nil
	}
	off := rng.Int64N(size)
	n := 1 + rng.Int64N(min(512<<10, size-off))
	got := make([]byte, n)
	k, err := f.ReadAt(got, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: read %d at %d: %w", path, n, off, err)
	}
	if int64(k) != n {
		return fmt.Errorf("%s: read %d at %d: got %d bytes", path, n, off, k)
	}
	want := make([]byte, n)
	if _, err := src.ReadAt(want, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: read %d at %d: wrong bytes", path, n, off)
	}
	return nil
}

// pushSmallImage pushes a small seed-format amd64 image to repo:1: a
// pseudo-random disk.img of diskSize bytes, a kernel, an initramfs and a
// cmdline.
func pushSmallImage(t *testing.T, host, repo string, diskSize int) pushed {
	t.Helper()
	src := t.TempDir()
	files := map[string][]byte{
		"disk.img":  fixture.RandomBytes(11, diskSize),
		"kernel":    fixture.RandomBytes(12, 3<<20+11),
		"initramfs": fixture.RandomBytes(13, 1<<20+3),
		"cmdline":   []byte("console=ttyS0 root=/dev/vda ro"),
	}
	var layers []layerFile
	for _, name := range []string{"disk.img", "kernel", "initramfs", "cmdline"} {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, seedLayer(name, p, name)) // the seed's role names are the file names
	}
	exp := map[string]expectedFile{}
	d := pushManifest(t, host, repo, layers, "application/vnd.OpenKCM.image.config.v1+json", []byte(`{}`),
		"application/vnd.oci.image.manifest.v1+json", true, map[string]string{"variant": "virtualization", "architecture": "amd64"}, exp, "amd64/virtualization")
	raw := exp["amd64/virtualization/manifest.json"].content
	if _, err := registrytest.PutManifest(context.Background(), host, repo, "1", d.MediaType, raw); err != nil {
		t.Fatal(err)
	}
	return pushed{ref: repo + ":1", digest: d.Digest.String(), expected: exp}
}

// checkFiles compares every file of the mount with its source.
func checkFiles(t *testing.T, dir string, exp map[string]expectedFile) {
	t.Helper()
	for p, e := range exp {
		if got, want := sumFile(t, filepath.Join(dir, p)), expectedSum(t, e); got != want {
			t.Fatalf("%s: sha256 %s, want %s", p, got, want)
		}
	}
}

// daemon is a mount started by launchMount, which does not wait.
type daemon struct {
	*mountProc
	stdout *lockedBuffer
}

// launchMount starts osimagefs mount like startMount (debug logging, its
// own disk cache, no prefetch unless extra says otherwise) but does not
// wait for the mount: use waitServing. It also captures stdout.
func launchMount(t *testing.T, ref, dir string, extra ...string) *daemon {
	t.Helper()
	joined := strings.Join(extra, " ")
	if !strings.Contains(joined, "--cache-dir") {
		extra = append(extra, "--cache-dir", t.TempDir())
	}
	if !strings.Contains(joined, "--prefetch") {
		extra = append(extra, "--prefetch", "none")
	}
	args := append([]string{"mount", "--log-level", "debug"}, extra...)
	args = append(args, ref, dir)
	d := &daemon{
		mountProc: &mountProc{cmd: exec.Command(binary, args...), dir: dir, stderr: &lockedBuffer{}, done: make(chan error, 1)},
		stdout:    &lockedBuffer{},
	}
	d.cmd.Stderr, d.cmd.Stdout = d.stderr, d.stdout
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// waitServing waits until the daemon logs that it has mounted.
func (d *daemon) waitServing(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.stderr.String(), "msg=mounted") {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("osimagefs mount exited before mounting: %v\n%s", err, d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after %s:\n%s", timeout, d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountCount is the number of mounts at dir in this mount namespace.
func mountCount(dir string) int {
	ms, err := osfs.MountsAt(dir)
	if err != nil {
		return -1
	}
	return len(ms)
}

// errnoName names the errno inside err, or the error itself.
func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
