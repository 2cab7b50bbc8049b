package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The boot scenario (issue 11): QEMU (TCG) boots the guest of the e2e
// boot test from each source in turn, over loopback and two emulated
// WANs whose bandwidth limit applies to each connection; the time is from
// the start of the source's work (mount, downloads) to the guest's last
// marker on its console.

const (
	bootRepo = "bench/boot"
	bootTag  = "1"
)

// bootCol is one way to boot the guest.
type bootCol struct{ key, name string }

var bootCols = []bootCol{
	{"local", "local files"},
	{"osimagefs", "osimagefs (fresh cache)"},
	{"profile", "osimagefs with a boot profile (fresh cache)"},
	{"qemucurl", "QEMU curl driver"},
	{"nbdkit", "nbdkit curl + readahead + cache"},
	{"pull", "pull, then boot"},
}

// bootRow is one network path to the registry.
type bootRow struct {
	key, name string
	latency   time.Duration // each way; 0 for loopback
	rateKBps  int64         // per connection
	host      string        // set by prepareBoot
}

var bootRowDefs = []bootRow{
	{key: "loopback", name: "loopback"},
	{key: "wan20", name: "WAN: 20 ms each way, 100 MB/s per connection", latency: 20 * time.Millisecond, rateKBps: 100_000},
	{key: "wan50", name: "WAN: 50 ms each way, 25 MB/s per connection", latency: 50 * time.Millisecond, rateKBps: 25_000},
}

// bootSetup is what prepareBoot builds.
type bootSetup struct {
	media     *bootMedia
	blobs     bootBlobs
	rows      []bootRow
	cols      []bootCol
	profile   string // why the profile column is missing ("" when it runs)
	wanDescs  []string
	recordLog string
}

// bootResults holds, per row and column key, one value per run.
type bootResults struct {
	took    map[string]map[string][]time.Duration
	fetched map[string]map[string][]int64 // bytes of disk.img's blob
}

func (r *bootResults) add(row, col string, took time.Duration, fetched int64) {
	if r.took == nil {
		r.took, r.fetched = map[string]map[string][]time.Duration{}, map[string]map[string][]int64{}
	}
	if r.took[row] == nil {
		r.took[row], r.fetched[row] = map[string][]time.Duration{}, map[string][]int64{}
	}
	r.took[row][col] = append(r.took[row][col], took)
	r.fetched[row][col] = append(r.fetched[row][col], fetched)
}

func bootRef(host string) string { return host + "/" + bootRepo + ":" + bootTag }

func blobURLIn(host, repository, digest string) string {
	return "http://" + host + "/v2/" + repository + "/blobs/" + digest
}

// prepareBoot builds (or reuses) the media, pushes the boot image, starts
// the WAN proxies of the rows and records the boot profile.
func (b *bench) prepareBoot(ctx context.Context) error {
	bs := &b.boot
	for _, tool := range []string{"qemu-system-x86_64", "nbdkit"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s: %w (scripts/provision.sh installs it)", tool, err)
		}
	}
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	start := time.Now()
	if bs.media, err = buildBootMedia(ctx, repo, b.cfg.mediaCache); err != nil {
		return err
	}
	b.logf("boot media in %s (%.1fs)", filepath.Dir(bs.media.Disk), time.Since(start).Seconds())
	m := bs.media
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	if _, err := b.osimagefs(sctx, "push", "--quiet", "--plain-http", bootRef(b.setup.regHost), "--arch", "amd64", "--variant", "virtualization",
		"--disk", m.Disk, "--kernel", m.Kernel, "--initramfs", m.Initramfs, "--squashfs", m.Squashfs, "--iso", m.ISO,
		"--cmdline", strings.TrimSpace(readString(m.Cmdline))); err != nil {
		return err
	}
	out, err := b.osimagefs(sctx, "inspect", "--json", "--plain-http", bootRef(b.setup.regHost))
	if err != nil {
		return err
	}
	var insp struct {
		Files []struct {
			Path, Digest string
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		return fmt.Errorf("inspect --json: %w", err)
	}
	bs.blobs = bootBlobs{}
	for _, f := range insp.Files {
		if strings.HasPrefix(f.Path, "amd64/virtualization/") && f.Digest != "" {
			bs.blobs[filepath.Base(f.Path)] = f.Digest
		}
	}
	for _, n := range append(bootFiles, bootDisks[:]...) {
		if bs.blobs[n] == "" {
			return fmt.Errorf("inspect shows no amd64/virtualization/%s:\n%s", n, out)
		}
	}
	b.logf("pushed the boot image, disk.img blob %s", bs.blobs["disk.img"])

	for _, r := range bootRowDefs {
		if !b.cfg.bootRows[r.key] {
			continue
		}
		r.host = b.setup.cntHost
		if r.latency > 0 {
			w, err := startWANLimit(b.cfg.wanProxy, b.setup.cntHost, r.latency, r.rateKBps, true)
			if err != nil {
				return fmt.Errorf("WAN proxy for %s: %w", r.name, err)
			}
			b.cl.add("WAN proxy "+r.key, func() error { w.close(); return nil })
			r.host = w.host
			bs.wanDescs = append(bs.wanDescs, r.name+": "+w.desc)
		}
		bs.rows = append(bs.rows, r)
	}
	for _, c := range bootCols {
		if b.cfg.bootCols[c.key] {
			bs.cols = append(bs.cols, c)
		}
	}
	if b.cfg.bootCols["profile"] {
		if err := b.recordProfile(ctx); err != nil {
			bs.profile = err.Error()
			b.logf("boot profile: %v; the profile column is left out", err)
		}
	}
	return nil
}

// errNoProfiles says the binary has no boot profiles.
var errNoProfiles = errors.New("this osimagefs has no boot profiles (mount --record, profile push)")

// recordProfile boots once from a fresh mount with --record on loopback,
// and pushes the profile written at unmount with `osimagefs profile push`.
func (b *bench) recordProfile(ctx context.Context) error {
	bs := &b.boot
	file := filepath.Join(b.work, "boot.profile")
	cache := filepath.Join(b.work, "cache-boot-record")
	defer os.RemoveAll(cache)
	d, err := b.startMount(ctx, "boot-record", bootRef(b.setup.cntHost), cache, "--prefetch", "small", "--record", file)
	if err != nil {
		if strings.Contains(err.Error(), "unknown flag") {
			return errNoProfiles
		}
		return fmt.Errorf("record: %w", err)
	}
	bs.recordLog = d.logPath
	_, err = bootGuest(ctx, time.Now(), b.treeSource(d.dir), bs.media.Markers)
	if serr := d.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("record: %w (mount log %s)", err, d.logPath)
	}
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		return fmt.Errorf("record: no profile written at unmount (%v; mount log %s)", err, d.logPath)
	}
	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	if _, err := b.osimagefs(sctx, "profile", "push", "--plain-http", bootRef(b.setup.regHost), file); err != nil {
		if strings.Contains(err.Error(), "unknown command") {
			return errNoProfiles
		}
		return err
	}
	b.logf("boot profile recorded (%d bytes) and pushed", fileSize(file))
	return nil
}

// treeSource is the guest from the amd64/virtualization directory of a
// mount at dir.
func (b *bench) treeSource(dir string) guestSource {
	t := filepath.Join(dir, "amd64", "virtualization")
	p := func(n string) string { return filepath.Join(t, n) }
	return guestSource{kernel: p("kernel"), initramfs: p("initramfs"), cmdline: p("cmdline"),
		drives: [3]string{fileDrive(p("disk.img"), true), fileDrive(p("root.squashfs"), false), fileDrive(p("image.iso"), false)}}
}

// runBoot boots the guest once from every column over every row.
func (b *bench) runBoot(ctx context.Context, i int) error {
	bs := &b.boot
	for _, r := range bs.rows {
		for _, c := range bs.cols {
			if c.key == "profile" && bs.profile != "" {
				continue
			}
			took, fetched, err := b.bootOnce(ctx, i, r, c)
			if err != nil {
				return fmt.Errorf("boot %s, %s: %w", r.name, c.name, err)
			}
			b.res.boot.add(r.key, c.key, took, fetched)
			b.logf("  boot %s, %s: %.2f s, disk.img fetched %s", r.key, c.key, took.Seconds(), fmtKB(fetched))
		}
	}
	return nil
}

// bootOnce boots the guest from column c over row r and returns the time
// to the last marker and the bytes of disk.img's blob fetched (counted by
// the counting proxy once every client of the registry has stopped).
func (b *bench) bootOnce(ctx context.Context, i int, r bootRow, c bootCol) (time.Duration, int64, error) {
	bs := &b.boot
	name := fmt.Sprintf("boot-%s-%s-%d", r.key, c.key, i+1)
	dir := filepath.Join(b.work, name)
	defer os.RemoveAll(dir)
	if err := b.dropCaches(ctx); err != nil {
		return 0, 0, err
	}
	cnt, disk := b.setup.counter, bs.blobs["disk.img"]
	before := cnt.BytesFor(disk)
	m := bs.media
	start := time.Now()
	var took time.Duration
	var err error
	switch c.key {
	case "local":
		took, err = bootGuest(ctx, start, guestSource{kernel: m.Kernel, initramfs: m.Initramfs, cmdline: m.Cmdline,
			drives: [3]string{fileDrive(m.Disk, true), fileDrive(m.Squashfs, false), fileDrive(m.ISO, false)}}, m.Markers)
	case "osimagefs", "profile":
		prefetch := "small" // without a profile, whatever the default
		if c.key == "profile" {
			prefetch = "auto"
		}
		var d *daemon
		d, err = b.startMount(ctx, name, bootRef(r.host), filepath.Join(dir, "cache"), "--prefetch", prefetch)
		if err != nil {
			return 0, 0, err
		}
		took, err = bootGuest(ctx, start, b.treeSource(d.dir), m.Markers)
		if serr := d.stop(); err == nil {
			err = serr
		}
		if err == nil {
			err = checkProfileUse(d.logPath, c.key == "profile")
		}
		if err != nil {
			err = fmt.Errorf("%w (mount log %s)", err, d.logPath)
		}
	default:
		peer := map[string]func(context.Context, string, bootBlobs, string) (guestSource, func(), error){
			"qemucurl": qemuCurlSource, "nbdkit": nbdkitSource, "pull": pullSource,
		}[c.key]
		sctx, cancel := b.stepCtx(ctx)
		defer cancel()
		var src guestSource
		var stop func()
		if src, stop, err = peer(sctx, r.host, bs.blobs, dir); err != nil {
			return 0, 0, err
		}
		took, err = bootGuest(ctx, start, src, m.Markers)
		stop()
	}
	if err != nil {
		return 0, 0, err
	}
	return took, cnt.BytesFor(disk) - before, nil
}

// profileFoundLog is what a mount logs when it replays a boot profile.
const profileFoundLog = "boot profile found"

// checkProfileUse fails unless the mount whose log is at path replayed a
// boot profile exactly when want says: each column measures what it says.
func checkProfileUse(path string, want bool) error {
	if want {
		return checkLogged(path, profileFoundLog)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.Contains(string(b), profileFoundLog) {
		return fmt.Errorf("the mount log %s says %q, but this column boots without one", path, profileFoundLog)
	}
	return nil
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// fmtKB formats a byte count in MB (10^6) below a GB, else GiB.
func fmtKB(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.2f MB", float64(n)/1e6)
}
