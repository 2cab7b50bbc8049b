package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// A fleet on loopback: the origin registry behind an emulated WAN
// (toxiproxy: 20 ms each way, 25 MB/s per connection), a real CNCF
// Distribution pull-through cache in front of it as the mirror, and a
// hosts.toml that points osimagefs at the mirror. The counting proxy sits
// on the WAN's near side: it sees every byte the origin sent across it,
// to the mirror and to the mounts.
type fleet struct {
	origin   *registrytest.Registry
	counter  *registrytest.Counter
	mirror   *registrytest.Mirror
	hostsDir string
}

const (
	fleetHosts    = 20
	fleetRead     = 64 << 20 // what each host reads of disk.img
	fleetDiskSize = 96<<20 + 4321
)

func newFleet(t *testing.T) *fleet {
	t.Helper()
	requireMountable(t)
	fixture.RequireTools(t, registrytest.MirrorBinary)
	origin := registrytest.Start(t)
	wan := registrytest.NewToxiProxy(t, origin.Host())
	wan.AddLatency(20)
	wan.AddRequestLatency(20)
	wan.AddBandwidth(25000) // KB/s, per connection
	counter := registrytest.NewCountingProxy(t, wan.Host())
	mirror := registrytest.StartMirror(t, counter.Host())
	hostsDir := t.TempDir()
	conf := fmt.Sprintf("# the origin, across the WAN\nserver = \"http://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
		counter.Host(), mirror.Host())
	if err := os.MkdirAll(filepath.Join(hostsDir, counter.Host()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostsDir, counter.Host(), "hosts.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return &fleet{origin: origin, counter: counter, mirror: mirror, hostsDir: hostsDir}
}

// push pushes an image with a random disk.img straight to the origin.
func (f *fleet) push(t *testing.T, repo string) randomImage {
	t.Helper()
	return pushRandomImage(t, f.origin.Host(), repo, map[string]int{"disk.img": fleetDiskSize, "kernel": 1<<20 + 5})
}

// host is one mount process of the fleet, with its own cache and metrics.
type fleetHost struct {
	dir, metrics string
	proc         *mountProc
}

func (f *fleet) mount(t *testing.T, img randomImage, extra ...string) *fleetHost {
	t.Helper()
	h := &fleetHost{dir: t.TempDir(), metrics: freeAddr(t)}
	args := append([]string{"--plain-http", "--hosts-dir", f.hostsDir, "--metrics-addr", h.metrics}, extra...)
	h.proc = startMount(t, img.img.ref(f.counter.Host()), h.dir, args...)
	return h
}

// hostBytes are the blob bytes host sent this mount, by its metrics.
func (h *fleetHost) hostBytes(t *testing.T, host, kind string) float64 {
	return max(0, metricValue(t, scrape(t, h.metrics), fmt.Sprintf(`osimagefs_host_bytes_total{host=%q,kind=%q}`, host, kind)))
}

// requests is the mount's count of requests to host with outcome.
func (h *fleetHost) requests(t *testing.T, host, kind, outcome string) float64 {
	return max(0, metricValue(t, scrape(t, h.metrics), fmt.Sprintf(`osimagefs_host_requests_total{host=%q,kind=%q,outcome=%q}`, host, kind, outcome)))
}

// readCompare reads n bytes of the mount's disk.img at off in 1 MiB reads
// and compares them with want; it returns the first difference or error.
func readCompare(path string, want []byte, off, n int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for at := off; at < off+n; {
		m := min(int64(len(buf)), off+n-at)
		got, err := f.ReadAt(buf[:m], at)
		if err != nil && !(err == io.EOF && int64(got) == m) {
			return fmt.Errorf("read %s at %d: %w", path, at, err)
		}
		if !bytes.Equal(buf[:got], want[at:at+int64(got)]) {
			return fmt.Errorf("%s: bytes at %d..%d differ from the image's", path, at, at+int64(got))
		}
		at += int64(got)
	}
	return nil
}

// readAll runs readCompare of the same range on every host at once and
// returns how long it took; every error fails the test.
func readAll(t *testing.T, hosts []*fleetHost, want []byte) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readCompare(filepath.Join(h.dir, "amd64/virtualization/disk.img"), want, 0, fleetRead)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Errorf("host %d: %v", i, err)
		}
	}
	return took
}

// warm runs one osimagefs fetch of img through the mirror and waits until
// the mirror has stored its disk.img; it returns how long the fetch took.
func (f *fleet) warm(t *testing.T, img randomImage) time.Duration {
	t.Helper()
	start := time.Now()
	out, errOut, code := runCLI(t, 5*time.Minute, "fetch", "--plain-http", "--hosts-dir", f.hostsDir, "--cache-dir", t.TempDir(), img.img.ref(f.counter.Host()))
	if code != 0 {
		t.Fatalf("fetch exited %d:\n%s\n%s", code, out, errOut)
	}
	took := time.Since(start)
	_, disk := diskOf(img)
	f.waitMirrorHas(t, disk)
	return took
}

// waitMirrorHas waits until the mirror has stored blob dgst (its fill
// goes on in the background after the client that started it).
func (f *fleet) waitMirrorHas(t *testing.T, dgst string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !f.mirror.Has(dgst) {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror has not stored %s after 2 minutes", dgst)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *fleet) mountMany(t *testing.T, img randomImage, n int) []*fleetHost {
	t.Helper()
	hosts := make([]*fleetHost, n)
	for i := range hosts {
		hosts[i] = f.mount(t, img)
	}
	return hosts
}

func diskOf(img randomImage) (data []byte, digest string) {
	for _, fl := range img.files {
		if strings.HasSuffix(fl.name, "/disk.img") {
			return fl.data, img.img.layers["disk.img"].Digest.String()
		}
	}
	panic("no disk.img")
}

// TestFleetWarmMirror: after one osimagefs fetch through the mirror, 20
// hosts read the same 64 MiB of disk.img at once: every byte is correct
// and the origin sends no further blob bytes. One host alone is timed
// too, for the ratio.
func TestFleetWarmMirror(t *testing.T) {
	f := newFleet(t)
	img := f.push(t, "os/fleet-warm")
	data, disk := diskOf(img)
	start := time.Now()
	fetchTook := f.warm(t, img)
	t.Logf("FLEET warm: fetch through the cold mirror took %s (the mirror stored disk.img after %s); the origin sent %s of the %s disk.img",
		fetchTook.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), mib(f.counter.BytesFor(disk)), mib(fleetDiskSize))

	hosts := f.mountMany(t, img, fleetHosts)
	f.counter.Reset()
	took := readAll(t, hosts, data)
	originAfter := settled(f.counter)
	var fromMirror float64
	for _, h := range hosts {
		fromMirror += h.hostBytes(t, f.mirror.Host(), "mirror")
	}
	if n := f.counter.BytesFor(disk); n != 0 {
		t.Errorf("the origin sent %d bytes of disk.img while %d hosts read it through the warm mirror, want 0", n, fleetHosts)
	}
	if originAfter != 0 {
		t.Errorf("the origin sent %d blob bytes after the fetch, want 0", originAfter)
	}
	if fromMirror < fleetHosts*fleetRead {
		t.Errorf("the hosts got %.0f bytes from the mirror, want at least %d", fromMirror, fleetHosts*fleetRead)
	}

	one := f.mount(t, img)
	f.counter.Reset()
	oneTook := readAll(t, []*fleetHost{one}, data)
	if n := f.counter.BlobBytes(); n != 0 {
		t.Errorf("the origin sent %d blob bytes to the single host, want 0", n)
	}
	t.Logf("FLEET warm: %d hosts read %s each in %s (%s from the mirror, 0 B from the origin); one host alone in %s: %.1fx the time for %dx the hosts",
		fleetHosts, mib(fleetRead), took.Round(time.Millisecond), mib(int64(fromMirror)), oneTook.Round(time.Millisecond),
		took.Seconds()/oneTook.Seconds(), fleetHosts)
}

// fillingAllowance is what one answer of Distribution 2.8 during a fill
// may cost the origin: it fetches the blob once more for each request
// that arrives meanwhile, until it notices the client hung up. Measured
// here: about 300 KB on an idle machine; 1 to 5 MiB with 20 mounts
// reading at once on 2 cores, which starve the mirror of CPU.
const fillingAllowance = 8 << 20

// TestFleetColdMirror: 20 hosts read the same 64 MiB of disk.img at once
// through a mirror that has nothing yet: no read fails, every byte is
// correct, and the origin sends at most one whole blob (the mirror's fill)
// plus what the hosts read from it directly (and what the mirror's
// answers during its fill cost, at most fillingAllowance each). Later
// hosts are served by the mirror alone.
func TestFleetColdMirror(t *testing.T) {
	f := newFleet(t)
	img := f.push(t, "os/fleet-cold")
	data, disk := diskOf(img)

	hosts := f.mountMany(t, img, fleetHosts)
	f.counter.Reset()
	took := readAll(t, hosts, data)
	f.waitMirrorHas(t, disk)
	settled(f.counter) // the mirror's answers during its fill may still stream
	origin := f.counter.BytesFor(disk)
	var direct, filling, failed float64
	for _, h := range hosts {
		direct += h.hostBytes(t, f.counter.Host(), "origin")
		filling += h.requests(t, f.mirror.Host(), "mirror", "filling")
		failed += h.requests(t, f.mirror.Host(), "mirror", "error")
	}
	t.Logf("FLEET cold: the hosts' requests to the mirror: %.0f answered with the whole blob (filling), %.0f failed", filling, failed)
	for _, a := range f.counter.Agents(disk) {
		t.Logf("FLEET cold: the origin sent %s of disk.img to %q", mib(f.counter.BytesForAgent(disk, a)), a)
	}
	limit := int64(fleetDiskSize) + int64(direct) + int64(filling)*fillingAllowance
	viaMirror := origin - f.counter.BytesForAgent(disk, "osimagefs")
	if filling > 0 {
		t.Logf("FLEET cold: the mirror got %s of disk.img from the origin: its fill and %.2f MiB per answer during the fill",
			mib(viaMirror), float64(viaMirror-fleetDiskSize)/filling/(1<<20))
	}
	if direct := f.counter.BytesForAgent(disk, "osimagefs"); direct == 0 {
		t.Errorf("no host read from the origin while the mirror filled")
	}
	t.Logf("FLEET cold: %d hosts read %s each in %s; the origin sent %s of disk.img: the mirror's fill (%s) + the hosts' direct reads (%s) + %s for %.0f answers during the fill",
		fleetHosts, mib(fleetRead), took.Round(time.Millisecond), mib(origin), mib(fleetDiskSize), mib(int64(direct)),
		mib(origin-int64(fleetDiskSize)-int64(direct)), filling)
	if origin > limit {
		t.Errorf("the origin sent %d bytes of disk.img, more than one blob (%d) + the hosts' direct reads (%.0f) + %.0f answers during the fill × %d",
			origin, fleetDiskSize, direct, filling, fillingAllowance)
	}
	if filling > 2*fleetHosts*6 {
		t.Errorf("the hosts asked the filling mirror %.0f times, want a few per host", filling)
	}

	// The mirror has the blob: a new host reads it from there alone.
	late := f.mount(t, img)
	settled(f.counter) // what the mirror's answers during its fill still stream
	f.counter.Reset()
	readAll(t, []*fleetHost{late}, data)
	if n := f.counter.BytesFor(disk); n != 0 {
		t.Errorf("a host mounted after the fill made the origin send %d bytes of disk.img, want 0", n)
	}
}

// TestFleetMirrorStops: the mirror is killed in the middle of a host's
// read; the read goes on from the origin without EIO. Once the mirror is
// back, the host uses it again.
func TestFleetMirrorStops(t *testing.T) {
	f := newFleet(t)
	img := f.push(t, "os/fleet-stop")
	data, disk := diskOf(img)
	f.warm(t, img)

	// No read-ahead: every byte is fetched when read, so what the mirror and
	// the origin send follows the reads.
	h := f.mount(t, img, "--read-ahead", "0")
	path := filepath.Join(h.dir, "amd64/virtualization/disk.img")
	if err := readCompare(path, data, 0, 8<<20); err != nil {
		t.Fatal(err)
	}
	f.counter.Reset()
	// The mirror is killed while a read is on the wire: 40 MiB read 1 MiB
	// at a time, paced, and the mirror stopped once it has sent 2 MiB.
	read := make(chan error, 1)
	start := h.hostBytes(t, f.mirror.Host(), "mirror")
	go func() {
		for at := int64(8 << 20); at < 48<<20; at += 1 << 20 {
			if err := readCompare(path, data, at, 1<<20); err != nil {
				read <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		read <- nil
	}()
	for deadline := time.Now().Add(10 * time.Second); h.hostBytes(t, f.mirror.Host(), "mirror") < start+(2<<20); {
		if time.Now().After(deadline) {
			t.Fatalf("the mirror sent less than 2 MiB of the read in 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	f.mirror.Stop()
	stoppedAfter := h.hostBytes(t, f.mirror.Host(), "mirror") - start
	if err := <-read; err != nil {
		t.Fatalf("a read failed with the mirror stopped: %v", err)
	}
	fromOrigin := f.counter.BytesFor(disk)
	t.Logf("FLEET mirror stopped after it had sent %s of a 40 MiB read; the rest, %s, came from the origin, without EIO", mib(int64(stoppedAfter)), mib(fromOrigin))
	if fromOrigin < 20<<20 {
		t.Fatalf("the origin sent %s while the mirror was stopped, want most of the 40 MiB read", mib(fromOrigin))
	}

	f.mirror.Start()
	before := h.hostBytes(t, f.mirror.Host(), "mirror")
	deadline := time.Now().Add(30 * time.Second)
	at := int64(48 << 20)
	for h.hostBytes(t, f.mirror.Host(), "mirror") == before {
		if time.Now().After(deadline) || at+(1<<20) > fleetDiskSize {
			t.Fatalf("the mirror is back but not used again after 30 s")
		}
		if err := readCompare(path, data, at, 256<<10); err != nil {
			t.Fatalf("a read failed after the mirror came back: %v", err)
		}
		at += 1 << 20
		time.Sleep(200 * time.Millisecond)
	}
	settled(f.counter)
	f.counter.Reset()
	if err := readCompare(path, data, at, min(8<<20, fleetDiskSize-at)); err != nil {
		t.Fatal(err)
	}
	if n := f.counter.BytesFor(disk); n != 0 {
		t.Errorf("with the mirror back the origin still sent %d bytes of disk.img, want 0", n)
	}
}

// TestFleetCorruptMirror: a mirror whose stored copy of a blob has gone
// bad (its file is damaged on disk: a real server handing out wrong
// bytes). The image has chunk tables, so the bad piece is caught before a
// reader sees it; the mirror is then passed over for that blob and the
// read is served from the origin: every byte correct, no EIO.
func TestFleetCorruptMirror(t *testing.T) {
	f := newFleet(t)
	img := f.push(t, "os/fleet-corrupt")
	data, disk := diskOf(img)
	if out, errOut, code := runCLI(t, 2*time.Minute, "index", "--plain-http", "--quiet", img.img.ref(f.origin.Host())); code != 0 {
		t.Fatalf("index exited %d:\n%s\n%s", code, out, errOut)
	}
	f.warm(t, img)
	const at = 10<<20 + 12345
	file, err := os.OpenFile(f.mirror.BlobFile(disk), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := file.WriteAt(bad, at); err != nil {
		t.Fatal(err)
	}
	file.Close()

	h := f.mount(t, img)
	f.counter.Reset()
	path := filepath.Join(h.dir, "amd64/virtualization/disk.img")
	// The first read of the blob is the damaged piece: the mirror is blamed
	// by the range it sent, not by having sent something before.
	if err := readCompare(path, data, at-4096, 16<<10); err != nil {
		t.Fatalf("reading the damaged piece through the mirror: %v", err)
	}
	if err := readCompare(path, data, 0, fleetRead); err != nil {
		t.Fatalf("reading through a mirror with a damaged copy: %v", err)
	}
	if n := h.requests(t, f.mirror.Host(), "mirror", "corrupt"); n < 1 {
		t.Errorf("the mount did not record the mirror's bad bytes (host_requests_total outcome corrupt = %.0f)", n)
	}
	if n := f.counter.BytesFor(disk); n == 0 {
		t.Errorf("the origin sent nothing: the bad piece was not fetched again from it")
	}
	t.Logf("FLEET corrupt mirror: 64 MiB read correct; %s from the origin after the mirror's bad piece", mib(f.counter.BytesFor(disk)))
}
