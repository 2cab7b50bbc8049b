package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/test/fixture"
)

// freeAddr returns 127.0.0.1:<a port free a moment ago>.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeRandom writes n random bytes (from seed) to a new file named name.
func writeRandom(t *testing.T, name string, seed uint64, n int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, fixture.RandomBytes(seed, n), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// prometheus is a running Prometheus server (Debian's prometheus package).
type prometheus struct {
	api string // http://host:port
}

// startPrometheus runs Prometheus scraping target (host:port) every
// second, and waits until it is ready. It stops at the end of the test.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	fixture.RequireTools(t, "prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: osimagefs
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	out := &lockedBuffer{}
	cmd := exec.Command("prometheus", "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	p := &prometheus{api: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.api + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("prometheus exited before it was ready: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 60 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query runs an instant PromQL query whose result is one sample and
// returns its value; ok is false while the result is empty.
func (p *prometheus) query(t *testing.T, q string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(p.api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s: %s", q, body.Status, body.Error)
	}
	switch len(body.Data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("query %s: %d samples, want one", q, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", q, s, err)
	}
	return v, true
}

// awaitQuery polls q until it yields want (Prometheus scrapes every
// second) and fails with the last value after 30 s.
func (p *prometheus) awaitQuery(t *testing.T, q string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, ok := p.query(t, q)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %s = %v (present: %v), want %v", q, got, ok, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// scrape returns the text of http://addr/metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(b)
}

// getfattr returns the value of attribute name of path, read with the
// getfattr tool.
func getfattr(t *testing.T, path, name string) string {
	t.Helper()
	out, err := exec.Command("getfattr", "--absolute-names", "--only-values", "-n", name, path).Output()
	if err != nil {
		t.Fatalf("getfattr -n %s %s: %v (%s)", name, path, err, stderrOf(err))
	}
	return string(out)
}

// stderrOf is the stderr captured in an *exec.ExitError.
func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
