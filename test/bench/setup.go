package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/osimagefs/osimagefs/test/registrytest"
)

const (
	repo = "bench/osimage"
	tag  = "1"
)

// setup is what prepare builds.
type setup struct {
	local              string // the local copy of disk.img
	regHost            string // the registry
	cntHost            string // counting proxy -> registry
	wanHost            string // WAN proxy -> counting proxy -> registry
	wanDesc            string
	wideHost, wideDesc string // per-connection-limited WAN proxy -> counting proxy -> registry
	counter            *registrytest.Counter
	digest             string // of disk.img's blob
	path               string // of disk.img in the tree, e.g. amd64/bench/disk.img
}

func ref(host string) string { return host + "/" + repo + ":" + tag }

func blobURL(host, digest string) string {
	return "http://" + host + "/v2/" + repo + "/blobs/" + digest
}

// prepare makes the work directory, starts the registry and the proxies,
// writes the data and pushes it.
func (b *bench) prepare(ctx context.Context) error {
	bin, err := filepath.Abs(b.cfg.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("osimagefs binary: %w (run make build)", err)
	}
	for _, tool := range []string{"dd", "curl", "sync"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
	}

	work := b.cfg.work
	if work == "" {
		if work, err = os.MkdirTemp("", "osimagefs-bench-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	b.work = work
	// Run a private copy of the binary: others may rebuild bin/osimagefs
	// while the benchmark runs.
	pinned := filepath.Join(work, "osimagefs")
	sum, err := copyFile(bin, pinned)
	if err != nil {
		return fmt.Errorf("copy %s: %w", bin, err)
	}
	b.cfg.bin = pinned
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	b.binInfo = fmt.Sprintf("%s (sha256 %s), built from the tree at %s", bin, sum[:12], strings.TrimSpace(cmpOr(string(commit), "unknown")))
	if b.cfg.keep {
		b.logf("work directory %s (kept)", work)
	} else {
		b.cl.add("work directory", func() error { return os.RemoveAll(work) })
		b.logf("work directory %s", work)
	}

	sctx, cancel := b.stepCtx(ctx)
	defer cancel()
	reg, err := registrytest.StartNoTest(sctx, filepath.Join(work, "registry"))
	if err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	b.cl.add("registry", reg.Close)
	b.setup.regHost = reg.Host()
	cnt, err := registrytest.NewCountingProxyNoTest(reg.Host())
	if err != nil {
		return fmt.Errorf("counting proxy: %w", err)
	}
	b.cl.add("counting proxy", cnt.Close)
	b.setup.counter, b.setup.cntHost = cnt, cnt.Host()
	if b.cfg.only["wan"] {
		w, err := startWAN(b.cfg.wanProxy, cnt.Host(), b.cfg.wanLatency, b.cfg.wanRate)
		if err != nil {
			return fmt.Errorf("WAN proxy: %w", err)
		}
		b.cl.add("WAN proxy", func() error { w.close(); return nil })
		b.setup.wanHost, b.setup.wanDesc = w.host, w.desc
	}
	b.logf("registry %s, counting proxy %s, WAN proxy %s", reg.Host(), cnt.Host(), b.setup.wanHost)

	b.setup.local = filepath.Join(work, "disk.img")
	start := time.Now()
	if err := writeRandom(b.setup.local, b.cfg.size, b.cfg.seed); err != nil {
		return err
	}
	b.logf("wrote %s of ChaCha8 data to %s in %.1fs", fmtBytes(b.cfg.size), b.setup.local, time.Since(start).Seconds())

	start = time.Now()
	out, err := b.osimagefs(sctx, "push", "--quiet", "--plain-http", ref(reg.Host()), "--arch", "amd64", "--variant", "bench", "--disk", b.setup.local)
	if err != nil {
		return err
	}
	b.logf("pushed %s in %.1fs", strings.TrimSpace(out), time.Since(start).Seconds())

	out, err = b.osimagefs(sctx, "inspect", "--json", "--plain-http", ref(reg.Host()))
	if err != nil {
		return err
	}
	var insp struct {
		Files []struct {
			Path   string `json:"path"`
			Role   string `json:"role"`
			Size   int64  `json:"size"`
			Digest string `json:"digest"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		return fmt.Errorf("inspect --json: %w", err)
	}
	for _, f := range insp.Files {
		if filepath.Base(f.Path) == "disk.img" && f.Size == b.cfg.size {
			b.setup.path, b.setup.digest = f.Path, f.Digest
		}
	}
	if b.setup.digest == "" {
		return fmt.Errorf("inspect shows no disk.img of %d bytes:\n%s", b.cfg.size, out)
	}
	b.logf("disk.img is %s, blob %s", b.setup.path, b.setup.digest)
	if b.cfg.only["wide"] {
		if err := b.prepareWide(); err != nil {
			return err
		}
	}
	if b.cfg.only["cpu"] {
		if err := b.prepareCPU(ctx); err != nil {
			return err
		}
	}
	return nil
}

// osimagefs runs the binary and returns its stdout.
func (b *bench) osimagefs(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, b.cfg.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("osimagefs %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// copyFile copies src to dst (mode 0755) and returns the hex sha256 of
// the content.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeRandom writes size bytes of ChaCha8 output (about 1 GB/s) to path.
func writeRandom(path string, size int64, seed uint64) error {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	r := rand.NewChaCha8(s)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		_, _ = r.Read(buf[:n]) // never fails
		if _, err := w.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fmtBytes formats a byte count in binary units.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}

// machine describes the host for the report.
func machine() [][2]string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	nproc, _ := exec.Command("nproc").Output()
	gov, _ := exec.Command("go", "version").Output()
	return [][2]string{
		{"nproc", strings.TrimSpace(string(nproc))},
		{"memory", mem},
		{"kernel", strings.TrimSpace(string(kernel))},
		{"CPU", cpu},
		{"go", strings.TrimSpace(cmpOr(string(gov), "unknown"))},
	}
}

func cmpOr(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
