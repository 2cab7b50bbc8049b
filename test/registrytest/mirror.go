package registrytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// MirrorBinary is Debian's CNCF Distribution (2.8) executable, which
// scripts/provision.sh installs.
const MirrorBinary = "docker-registry"

// Mirror is a real CNCF Distribution pull-through cache (proxy.remoteurl)
// run as a child process of MirrorBinary on 127.0.0.1, plain HTTP, with
// filesystem storage. Stop kills it; Start runs it again on the same
// address with the same storage, as a mirror that went away and came back.
type Mirror struct {
	tb     testing.TB
	bin    string
	dir    string
	config string
	addr   string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartMirror runs a pull-through cache of the registry at upstreamHost
// ("host:port", plain HTTP), waits until it answers and registers
// t.Cleanup to stop it. It fails the test when MirrorBinary is missing;
// check first with fixture.RequireTools.
func StartMirror(t testing.TB, upstreamHost string) *Mirror {
	t.Helper()
	bin, err := exec.LookPath(MirrorBinary)
	if err != nil {
		t.Fatalf("registrytest: %s not found (scripts/provision.sh installs it): %v", MirrorBinary, err)
	}
	ln, err := listenFree()
	if err != nil {
		t.Fatalf("registrytest: mirror: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	m := &Mirror{tb: t, bin: bin, dir: dir, addr: addr, config: filepath.Join(dir, "config.yml")}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
proxy:
  remoteurl: http://%s
`, filepath.Join(dir, "storage"), addr, upstreamHost)
	if err := os.WriteFile(m.config, []byte(cfg), 0o600); err != nil {
		t.Fatalf("registrytest: mirror config: %v", err)
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Dir is where the mirror keeps its storage, config and log (mirror.log).
func (m *Mirror) Dir() string { return m.dir }

// Has reports whether the mirror has stored blob dgst ("sha256:<hex>")
// completely: a look at its storage, which costs it no request (a request
// for a blob it is filling would make it fetch the blob from the origin
// once more).
func (m *Mirror) Has(dgst string) bool {
	_, err := os.Stat(m.BlobFile(dgst))
	return err == nil
}

// BlobFile is where the mirror stores blob dgst ("sha256:<hex>"), once
// it has it: the file it serves the blob's bytes from.
func (m *Mirror) BlobFile(dgst string) string {
	alg, hex, ok := strings.Cut(dgst, ":")
	if !ok || len(hex) < 2 {
		return filepath.Join(m.dir, "storage", "invalid-digest")
	}
	return filepath.Join(m.dir, "storage", "docker", "registry", "v2", "blobs", alg, hex[:2], hex, "data")
}

// Host is the mirror's "127.0.0.1:port".
func (m *Mirror) Host() string { return m.addr }

// Start runs the mirror (again) and waits until GET /v2/ answers 200.
func (m *Mirror) Start() {
	m.tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	// The port may still be held by the process just killed.
	for {
		ln, err := net.Listen("tcp", m.addr)
		if err == nil {
			ln.Close()
			break
		}
		if ctx.Err() != nil {
			m.tb.Fatalf("registrytest: mirror address %s stays busy: %v", m.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf, err := os.OpenFile(filepath.Join(m.dir, "mirror.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.tb.Fatalf("registrytest: mirror log: %v", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(m.bin, "serve", m.config)
	cmd.Stdout, cmd.Stderr = logf, logf // it logs every client that hangs up as an error
	if err := cmd.Start(); err != nil {
		m.tb.Fatalf("registrytest: start %s: %v", m.bin, err)
	}
	m.cmd = cmd
	if err := waitReady(ctx, m.addr); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		m.cmd = nil
		m.tb.Fatalf("registrytest: mirror: %v", err)
	}
}

// Stop kills the mirror at once (connections in flight are cut) and waits
// for it to exit.
func (m *Mirror) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}
