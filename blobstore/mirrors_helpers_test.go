package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// mirrorRepo is the repository of the mirror tests, the same on the
// origin and on every mirror.
const mirrorRepo = "os/mirrored"

// seenRequest is one request a testHost received.
type seenRequest struct {
	Time   time.Time
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Status int   // 0 until sent (or when nothing was)
	Bytes  int64 // body bytes written, once the handler returned
}

// testHost is a plain-HTTP server on 127.0.0.1 that logs every request
// and forwards it to a real registry (a front), or, without one, answers
// GET /v2/ with 200 and everything else 404 (a fake). Fake sets how it
// answers the GETs of one blob instead, for what a real registry does not
// do on demand. Stop closes its listener and connections (connections are
// then refused); Start listens again on the same address.
type testHost struct {
	t        testing.TB
	addr     string
	upstream *httputil.ReverseProxy

	mu     sync.Mutex
	fakes  map[string]blobFake // by digest
	log    []seenRequest
	srv    *http.Server
	served chan struct{}
}

// blobFake answers a GET of a blob.
type blobFake func(w http.ResponseWriter, r *http.Request)

// newTestHost starts a testHost in front of the registry at upstream
// ("" for a fake), stopped at the end of the test.
func newTestHost(t testing.TB, upstream string) *testHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &testHost{t: t, addr: ln.Addr().String(), fakes: map[string]blobFake{}}
	if upstream != "" {
		target := &url.URL{Scheme: "http", Host: upstream}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		h.upstream = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
			},
			Transport:     tr,
			FlushInterval: -1,
			ErrorLog:      log.New(io.Discard, "", 0),
			ErrorHandler:  func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) },
		}
	}
	h.serve(ln)
	t.Cleanup(h.Stop)
	return h
}

// startFronted starts a real registry and a testHost in front of it.
func startFronted(t testing.TB) (*registrytest.Registry, *testHost) {
	t.Helper()
	reg := registrytest.Start(t)
	return reg, newTestHost(t, reg.Host())
}

// Host is the testHost's "127.0.0.1:port".
func (h *testHost) Host() string { return h.addr }

func (h *testHost) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(h.handle), ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	h.mu.Lock()
	h.srv, h.served = srv, served
	h.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
}

// Stop stops serving: the listener and every connection are closed.
func (h *testHost) Stop() {
	h.mu.Lock()
	srv, served := h.srv, h.served
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
		<-served
	}
}

// Start serves again on the same address.
func (h *testHost) Start() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", h.addr)
		if err == nil {
			h.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("listen on %s again: %v", h.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Fake makes the GETs of blob d be answered by f (nil: as before, by the
// registry behind or 404).
func (h *testHost) Fake(d digest.Digest, f blobFake) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f == nil {
		delete(h.fakes, d.String())
		return
	}
	h.fakes[d.String()] = f
}

func (h *testHost) handle(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	i := len(h.log)
	h.log = append(h.log, seenRequest{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
	var fake blobFake
	if _, d, ok := registrytest.ParseBlobPath(r.URL.Path); ok && r.Method == http.MethodGet {
		fake = h.fakes[d]
	}
	h.mu.Unlock()
	rw := &recordingWriter{ResponseWriter: w, onStatus: func(code int) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.log[i].Status = code
	}}
	defer func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.log[i].Bytes = rw.n
	}()
	switch {
	case fake != nil:
		fake(rw, r)
	case h.upstream != nil:
		h.upstream.ServeHTTP(rw, r)
	case r.URL.Path == "/v2/" || r.URL.Path == "/v2":
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, "{}")
	default:
		registryError(rw, http.StatusNotFound)
	}
}

// Requests are the requests received so far, in arrival order.
func (h *testHost) Requests() []seenRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// Gets are the GETs of /v2/<mirrorRepo>/<kind>/<id> ("blobs" or
// "manifests"; id "" for any).
func (h *testHost) Gets(kind, id string) []seenRequest {
	var out []seenRequest
	prefix := "/v2/" + mirrorRepo + "/" + kind + "/"
	for _, r := range h.Requests() {
		if r.Method == http.MethodGet && strings.HasPrefix(r.Path, prefix) && (id == "" || r.Path == prefix+id) {
			out = append(out, r)
		}
	}
	return out
}

// BlobGets are the GETs of blob d.
func (h *testHost) BlobGets(d digest.Digest) []seenRequest { return h.Gets("blobs", d.String()) }

// BlobBytes is the body bytes sent for blob d.
func (h *testHost) BlobBytes(d digest.Digest) int64 {
	var n int64
	for _, r := range h.BlobGets(d) {
		n += r.Bytes
	}
	return n
}

// recordingWriter reports the status sent and counts the body bytes.
type recordingWriter struct {
	http.ResponseWriter
	onStatus func(int)
	sent     bool
	n        int64
}

func (w *recordingWriter) WriteHeader(code int) {
	if !w.sent {
		w.sent = true
		w.onStatus(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// registryError answers code with a registry-style JSON error.
func registryError(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, `{"errors":[{"code":"FAKE","message":"fake %d"}]}`, code)
}

// rangesFake serves data as a registry does: 206 with the range asked for.
func rangesFake(data []byte) blobFake {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// wholeFake answers every GET with the whole of data (200), Range or not,
// after delay: a pull-through cache that is filling the blob.
func wholeFake(data []byte, delay time.Duration) blobFake {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
	}
}

// statusFake answers code.
func statusFake(code int) blobFake {
	return func(w http.ResponseWriter, r *http.Request) { registryError(w, code) }
}

// resetFake resets the connection (TCP RST) without answering.
func resetFake() blobFake {
	return func(w http.ResponseWriter, r *http.Request) { hangUp(w, true) }
}

// cutFake answers the range asked for with 206 and its full
// Content-Length, sends half its bytes and closes the connection.
func cutFake(data []byte) blobFake {
	return func(w http.ResponseWriter, r *http.Request) {
		var first, last int64
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || last < first || last >= int64(len(data)) {
			registryError(w, http.StatusBadRequest)
			return
		}
		n := last - first + 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(data[first : first+n/2])
		_ = http.NewResponseController(w).Flush()
		hangUp(w, false)
	}
}

// hangUp takes the connection from the server and closes it, with a TCP
// RST when rst is set.
func hangUp(w http.ResponseWriter, rst bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// mirrorSpec is one [host."http://..."] entry of a hosts.toml.
type mirrorSpec struct {
	host   string            // host:port
	caps   string            // the capabilities array's body; "" for "pull", "resolve"
	header map[string]string // the [host."...".header] table
}

// writeHostsDir writes <dir>/<registry>/hosts.toml naming the registry
// (plain HTTP) as the server and the mirrors, in order, and returns dir.
func writeHostsDir(t testing.TB, registry string, mirrors ...mirrorSpec) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\ncapabilities = [\"pull\", \"resolve\"]\n", "http://"+registry)
	for _, m := range mirrors {
		caps := m.caps
		if caps == "" {
			caps = `"pull", "resolve"`
		}
		u := "http://" + m.host
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [%s]\n", u, caps)
		if len(m.header) > 0 {
			fmt.Fprintf(&b, "  [host.%q.header]\n", u)
			for _, k := range slices.Sorted(maps.Keys(m.header)) {
				fmt.Fprintf(&b, "    %s = %q\n", k, m.header[k])
			}
		}
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, registry), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, registry, "hosts.toml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// openMirrored opens a Store on ref (host/repo...) with the hosts
// configuration in dir, plain HTTP, its debug log in the logBuffer
// returned.
func openMirrored(t testing.TB, ref, dir string, opts Options) (*Store, *logBuffer) {
	t.Helper()
	lb := &logBuffer{}
	opts.PlainHTTP, opts.HostsDir = true, dir
	opts.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, lb
}

// pushTo pushes data as a blob of mirrorRepo to each registry.
func pushTo(t testing.TB, data []byte, regs ...*registrytest.Registry) ocispec.Descriptor {
	t.Helper()
	var desc ocispec.Descriptor
	for _, r := range regs {
		var err error
		if desc, err = registrytest.PushBlobBytes(context.Background(), r.Host(), mirrorRepo, data, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	return desc
}

// testImage is an OS image: a manifest, its config and one layer.
type testImage struct {
	manifest, config, layer ocispec.Descriptor
	layerData               []byte
}

// pushImage pushes the same OS image, tagged tag, to each registry.
func pushImage(t testing.TB, tag string, regs ...*registrytest.Registry) testImage {
	t.Helper()
	layer := fixture.RandomBytes(51, 1<<20+17)
	cfg := []byte(`{"commandLine":"console=ttyS0"}`)
	img := testImage{layerData: layer}
	img.config = pushTo(t, cfg, regs...)
	img.config.MediaType = image.MediaTypeSeedConfig
	img.layer = pushTo(t, layer, regs...)
	img.layer.MediaType = "application/vnd.openkcm.image.disk.img"
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: img.config, Layers: []ocispec.Descriptor{img.layer}}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	img.manifest = ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	for _, r := range regs {
		if _, err := registrytest.PutManifest(context.Background(), r.Host(), mirrorRepo, tag, m.MediaType, raw); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// readAt reads n bytes of blob d at off through s (one part, 10 s) and
// fails the test when they are not want's.
func readAt(t testing.TB, s *Store, d digest.Digest, want []byte, off int64, n int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := bytes.Repeat([]byte{0xEE}, n)
	if err := readRange(ctx, s, d, p, off); err != nil {
		return err
	}
	if !bytes.Equal(p, want[off:off+int64(n)]) {
		t.Errorf("read of %d bytes at %d of %s: bytes differ from the blob", n, off, d)
		return errWrongBytes
	}
	return nil
}

// mustReadAt is readAt failing the test on error.
func mustReadAt(t testing.TB, s *Store, d digest.Digest, want []byte, off int64, n int) {
	t.Helper()
	if err := readAt(t, s, d, want, off, n); err != nil {
		t.Fatalf("read %d bytes at %d of %s: %v", n, off, d, err)
	}
}

// roundTrips is a base transport (Options.Transport) that counts the
// blob requests sent to each host, whether they got an answer or not.
type roundTrips struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func newRoundTrips() *roundTrips {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return &roundTrips{base: tr, n: map[string]int{}}
}

func (rt *roundTrips) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, _, ok := registrytest.ParseBlobPath(req.URL.Path); ok {
		rt.mu.Lock()
		rt.n[req.URL.Host]++
		rt.mu.Unlock()
	}
	return rt.base.RoundTrip(req)
}

// blobRequests is how many blob requests were sent to host.
func (rt *roundTrips) blobRequests(host string) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.n[host]
}

// hostEvents is a HostObserver that counts what it is told.
type hostEvents struct {
	mu       sync.Mutex
	requests map[string]int   // "host kind outcome"
	bytes    map[string]int64 // "host kind"
}

func newHostEvents() *hostEvents {
	return &hostEvents{requests: map[string]int{}, bytes: map[string]int64{}}
}

func (o *hostEvents) HostRequest(host, kind, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests[host+" "+kind+" "+outcome]++
}

func (o *hostEvents) HostBytes(host, kind string, n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bytes[host+" "+kind] += n
}

func (o *hostEvents) snapshot() (map[string]int, map[string]int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, b := map[string]int{}, map[string]int64{}
	for k, v := range o.requests {
		r[k] = v
	}
	for k, v := range o.bytes {
		b[k] = v
	}
	return r, b
}
