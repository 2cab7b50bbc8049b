package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	osfs "github.com/osimagefs/osimagefs/fs"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestMetricsScrapedByPrometheus: a real Prometheus scrapes a mount's
// --metrics-addr every second; the bytes it reports served are the bytes
// the test read, and the bytes it reports fetched are those the registry
// sent, by layer role, with the registry's host as the only place label.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "prometheus")
	const diskSize, kernelSize = 12<<20 + 777, 3<<20 + 5
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/metrics", []layerFile{
		seedLayer("disk.img", writeRandom(t, "disk.img", 21, diskSize), "disk.img"),
		seedLayer("kernel", writeRandom(t, "vmlinuz", 22, kernelSize), "kernel"),
	})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	addr := freeAddr(t)
	dir := t.TempDir()
	startMount(t, img.ref(counter.Host()), dir, "--plain-http", "--metrics-addr", addr)
	prom := startPrometheus(t, addr)
	prom.awaitQuery(t, `up{job="osimagefs"}`, 1)

	// Whole files: the kernel's read-ahead cannot read past their end, so
	// what reaches the daemon is exactly what the test read.
	var read int64
	for _, name := range []string{"kernel", "disk.img"} {
		n, err := copyFile(filepath.Join(dir, "amd64/virtualization", name))
		if err != nil {
			t.Fatal(err)
		}
		read += n
	}
	if read != diskSize+kernelSize {
		t.Fatalf("read %d bytes, want %d", read, diskSize+kernelSize)
	}
	settled(counter)
	disk, kernel := counter.BytesFor(img.layers["disk.img"].Digest.String()), counter.BytesFor(img.layers["kernel"].Digest.String())
	t.Logf("read %d bytes; the registry sent %d bytes of disk.img and %d of kernel", read, disk, kernel)
	if disk < diskSize || kernel < kernelSize {
		t.Fatalf("the registry sent %d and %d bytes, less than the files (%d, %d)", disk, kernel, diskSize, kernelSize)
	}

	prom.awaitQuery(t, `sum(osimagefs_served_bytes_total{job="osimagefs"})`, float64(read))
	prom.awaitQuery(t, `osimagefs_served_bytes_total{role="kernel"}`, kernelSize)
	prom.awaitQuery(t, `osimagefs_fetched_bytes_total{role="disk",registry="`+counter.Host()+`"}`, float64(disk))
	prom.awaitQuery(t, `osimagefs_fetched_bytes_total{role="kernel",registry="`+counter.Host()+`"}`, float64(kernel))
	prom.awaitQuery(t, `sum(osimagefs_fetched_bytes_total)`, float64(disk+kernel))
	prom.awaitQuery(t, `sum(osimagefs_eio_total)`, 0)
	prom.awaitQuery(t, `osimagefs_disk_cache_bytes >= `+strconv.FormatInt(diskSize+kernelSize, 10), diskSize+kernelSize)
	if v, ok := prom.query(t, `sum(osimagefs_fetch_requests_total)`); !ok || v < 2 {
		t.Errorf("osimagefs_fetch_requests_total sums to %v (present %v), want at least one request per layer", v, ok)
	}
	if v, ok := prom.query(t, `sum(osimagefs_fetch_duration_seconds_count)`); !ok || v < 2 {
		t.Errorf("osimagefs_fetch_duration_seconds has %v observations (present %v), want at least 2", v, ok)
	}

	// The endpoint itself: every metric of the README with its type, and
	// no label value but hosts, roles, tiers, causes and the digest.
	text := scrape(t, addr)
	t.Logf("/metrics (osimagefs_ lines):\n%s", grepLines(text, "osimagefs_"))
	for name, typ := range map[string]string{
		"osimagefs_fetched_bytes_total": "counter", "osimagefs_fetch_requests_total": "counter",
		"osimagefs_fetch_failures_total": "counter", "osimagefs_fetch_retries_total": "counter",
		"osimagefs_fetch_duration_seconds": "histogram", "osimagefs_cache_hits_total": "counter",
		"osimagefs_cache_misses_total": "counter", "osimagefs_served_bytes_total": "counter",
		"osimagefs_eio_total": "counter", "osimagefs_readahead_bytes_total": "counter",
		"osimagefs_prefetch_bytes_total": "counter", "osimagefs_profile_replay_bytes_total": "counter", "osimagefs_verify_failures_total": "counter",
		"osimagefs_disk_cache_bytes": "gauge", "osimagefs_disk_cache_limit_bytes": "gauge",
		"osimagefs_mount_info": "gauge", "go_goroutines": "gauge", "process_resident_memory_bytes": "gauge",
	} {
		if !strings.Contains(text, "# TYPE "+name+" "+typ+"\n") {
			t.Errorf("/metrics has no %s of type %s", name, typ)
		}
	}
	for _, tier := range []string{"memory", "disk"} {
		for _, kind := range []string{"hits", "misses"} {
			if !strings.Contains(text, `osimagefs_cache_`+kind+`_total{cache="`+tier+`"}`) {
				t.Errorf("/metrics has no %s of the %s cache", kind, tier)
			}
		}
	}
	for _, bad := range []string{"http://", "https://", "/v2/", "token", "@"} {
		if strings.Contains(text, bad) {
			t.Errorf("/metrics contains %q:\n%s", bad, text)
		}
	}
}

// grepLines returns the lines of s that start with prefix.
func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// copyFile reads the file at p to its end and returns its size.
func copyFile(p string) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(io.Discard, f)
}

// TestXattrs: each layer file answers getfattr with its digest, its media
// type and the bytes of it that are local: none before any read, after a
// read of part of it as many as the registry sent, and never the whole
// file.
func TestXattrs(t *testing.T) {
	requireMountable(t)
	fixture.RequireTools(t, "getfattr")
	const size = 24<<20 + 99
	reg := registrytest.Start(t)
	img := pushMediaImage(t, reg.Host(), "os/xattr", []layerFile{seedLayer("disk.img", writeRandom(t, "disk.img", 31, size), "disk.img")})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	dir := t.TempDir()
	startMount(t, img.ref(counter.Host()), dir, "--plain-http", "--read-ahead", "0")
	file := filepath.Join(dir, "amd64/virtualization/disk.img")
	layer := img.layers["disk.img"]

	if got := getfattr(t, file, "user.osimagefs.digest"); got != layer.Digest.String() {
		t.Errorf("user.osimagefs.digest = %q, want %q", got, layer.Digest)
	}
	if got := getfattr(t, file, "user.osimagefs.mediatype"); got != layer.MediaType {
		t.Errorf("user.osimagefs.mediatype = %q, want %q", got, layer.MediaType)
	}
	if got := getfattr(t, file, "user.osimagefs.cached"); got != "0" {
		t.Errorf("user.osimagefs.cached before any read = %q, want 0", got)
	}
	out, err := exec.Command("getfattr", "--absolute-names", "-d", file).Output()
	if err != nil {
		t.Fatalf("getfattr -d: %v (%s)", err, stderrOf(err))
	}
	for _, name := range []string{"user.osimagefs.digest", "user.osimagefs.mediatype", "user.osimagefs.cached"} {
		if !strings.Contains(string(out), name+"=") {
			t.Errorf("getfattr -d does not list %s:\n%s", name, out)
		}
	}
	if n := counter.BytesFor(layer.Digest.String()); n != 0 {
		t.Fatalf("getfattr made the mount fetch %d bytes", n)
	}

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if _, err := f.ReadAt(buf, 8<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	settled(counter)
	if out, err := exec.Command("getfattr", "-d", file).CombinedOutput(); err == nil {
		t.Logf("getfattr -d after the read:\n%s", out)
	}
	fetched := counter.BytesFor(layer.Digest.String())
	cached, err := strconv.ParseInt(getfattr(t, file, "user.osimagefs.cached"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after reading 1 MiB at 8 MiB: %d bytes cached, %d fetched", cached, fetched)
	if cached != fetched || cached < int64(len(buf)) || cached >= size {
		t.Errorf("user.osimagefs.cached = %d after reading %d bytes of %d; the registry sent %d", cached, len(buf), size, fetched)
	}
	if got := getfattr(t, filepath.Join(dir, "amd64/virtualization/manifest.json"), "user.osimagefs.mediatype"); got != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest.json: user.osimagefs.mediatype = %q", got)
	}
}

// TestStatus: osimagefs status finds two mounts in mountinfo (type
// fuse.osimagefs, the reference as the source) and shows for each the
// reference, digest, daemon pid and the bytes it fetched, cached and
// served; a directory that is not an osimagefs mount is an error naming it.
func TestStatus(t *testing.T) {
	requireMountable(t)
	const size = 6<<20 + 3
	reg := registrytest.Start(t)
	a := pushMediaImage(t, reg.Host(), "os/status-a", []layerFile{seedLayer("disk.img", writeRandom(t, "a.img", 41, size), "disk.img")})
	b := pushMediaImage(t, reg.Host(), "os/status-b", []layerFile{seedLayer("disk.img", writeRandom(t, "b.img", 42, size), "disk.img")})
	counter := registrytest.NewCountingProxy(t, reg.Host())
	dirA, dirB := t.TempDir(), t.TempDir()
	refA, refB := img(a, counter), img(b, counter)
	ma := startMount(t, refA, dirA, "--plain-http")
	mb := startMount(t, refB, dirB, "--plain-http")
	for dir, ref := range map[string]string{dirA: refA, dirB: refB} {
		ms, err := osfs.MountsAt(dir)
		if err != nil || len(ms) == 0 {
			t.Fatalf("mountinfo at %s: %v %v", dir, ms, err)
		}
		if m := ms[len(ms)-1]; m.FSType != "fuse.osimagefs" || m.Source != ref {
			t.Errorf("mountinfo at %s: type %q source %q, want fuse.osimagefs and %q", dir, m.FSType, m.Source, ref)
		}
	}
	n, err := copyFile(filepath.Join(dirA, "amd64/virtualization/disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	settled(counter)
	fetchedA := counter.BytesFor(a.layers["disk.img"].Digest.String())

	// Every mount of the host is listed; one this test does not own may be
	// unreadable (a daemon of another build, or gone), which makes the exit
	// status 1 but must not hide the others.
	out, stderr, code := runCLI(t, 30e9, "status", "--json")
	if code != 0 && (code != 1 || !strings.Contains(stderr, "could not read the status")) {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, 30e9, "status", "--json", dirA, dirB); code != 0 {
		t.Fatalf("status --json %s %s: exit %d: %s", dirA, dirB, code, stderr)
	}
	var rows []struct {
		Mountpoint   string `json:"mountpoint"`
		Reference    string `json:"reference"`
		Digest       string `json:"digest"`
		PID          int    `json:"pid"`
		FetchedBytes int64  `json:"fetched_bytes"`
		CachedBytes  int64  `json:"cached_bytes"`
		ServedBytes  int64  `json:"served_bytes"`
		Errors       int64  `json:"errors"`
		Error        string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	want := map[string]struct {
		ref, digest             string
		pid                     int
		fetched, cached, served int64
	}{
		dirA: {refA, a.digest, ma.cmd.Process.Pid, fetchedA, fetchedA, n},
		dirB: {refB, b.digest, mb.cmd.Process.Pid, 0, 0, 0},
	}
	seen := 0
	for _, r := range rows {
		w, ok := want[r.Mountpoint]
		if !ok {
			continue // another test's mount
		}
		seen++
		if r.Error != "" || r.Reference != w.ref || r.Digest != w.digest || r.PID != w.pid || r.FetchedBytes != w.fetched ||
			r.CachedBytes != w.cached || r.ServedBytes != w.served || r.Errors != 0 {
			t.Errorf("status of %s: %+v, want %+v", r.Mountpoint, r, w)
		}
	}
	if seen != 2 {
		t.Fatalf("status --json lists %d of the test's 2 mounts:\n%s", seen, out)
	}

	out, stderr, code = runCLI(t, 30e9, "status", dirA, dirB)
	t.Logf("osimagefs status %s %s:\n%s", dirA, dirB, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	short := func(ref string) string { return ref[:strings.Index(ref, "@")+len("@sha256:")+12] } // the table's form
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "MOUNTPOINT") ||
		!strings.Contains(lines[1], dirA+" ") || !strings.Contains(lines[1], short(refA)) || !strings.Contains(lines[1], strconv.Itoa(ma.cmd.Process.Pid)) ||
		!strings.Contains(lines[2], dirB+" ") || !strings.Contains(lines[2], short(refB)) {
		t.Errorf("status %s %s: exit %d, stderr %q, table:\n%s", dirA, dirB, code, stderr, out)
	}

	plain := t.TempDir()
	for _, tc := range []struct{ dir, says string }{
		{plain, "is not a mount point"},
		{"/proc", "is not an osimagefs mount: it is proc"},
	} {
		_, stderr, code := runCLI(t, 30e9, "status", dirA, tc.dir)
		if code != 2 || !strings.Contains(stderr, tc.dir+" "+tc.says) {
			t.Errorf("status %s: exit %d, stderr %q; want 2 and %q", tc.dir, code, stderr, tc.says)
		}
	}

	// A daemon killed: its mount stays in mountinfo, and status says
	// what became of it.
	if err := mb.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-mb.done
	mb.done <- nil
	out, stderr, code = runCLI(t, 30e9, "status", dirA, dirB)
	t.Logf("after SIGKILL of the daemon of %s:\n%s", dirB, out)
	if code != 1 || !strings.Contains(out, "daemon is gone") || !strings.Contains(stderr, "could not read the status of 1 of 2") {
		t.Errorf("status with a dead daemon: exit %d, stderr %q:\n%s", code, stderr, out)
	}
}

// img is the reference of a pushed image through the counting proxy.
func img(i mediaImage, c *registrytest.Counter) string { return i.ref(c.Host()) }
