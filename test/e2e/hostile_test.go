package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// The hostile-image tests push broken and malicious OS images to a real
// registry and mount (and inspect) them with the built binary. Every case
// must end in one of two ways: refused, quickly, with a distinct exit
// status and a one-line reason that names what is wrong and where, leaving
// nothing mounted; or mounted, showing exactly the documented safe result.
// Never a panic, a hang, a data race or bytes that are not the blob's.
//
// Distribution refuses many broken documents on PUT (bad JSON, unknown
// blobs and manifests, digest mismatches). A hostileFront before it serves
// those: a registry (or a proxy, or a captive portal) that sends them.

const hostileRepo = "os/hostile"

// Media types the cases use.
const (
	hostileKernelType    = "application/vnd.OpenKCM.image.kernel"
	hostileInitramfsType = "application/vnd.OpenKCM.image.initramfs"
	hostileConfigType    = "application/vnd.OpenKCM.image.config.v1+json"
	hostileUnknownType   = "application/vnd.example.firmware.v1"
)

// hostileAnswer is what the front sends for one path instead of asking the
// registry.
type hostileAnswer struct {
	status      int // 0 means 200
	contentType string
	body        []byte
}

// hostileFront is an HTTP server before a real registry: GET and HEAD of
// the paths it was given get canned answers; everything else is proxied.
type hostileFront struct {
	srv     *httptest.Server
	mu      sync.Mutex
	answers map[string]hostileAnswer
	served  map[string]int // path -> canned answers sent
}

func newHostileFront(t *testing.T, upstream string) *hostileFront {
	t.Helper()
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		FlushInterval: -1,
	}
	f := &hostileFront{answers: map[string]hostileAnswer{}, served: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			f.mu.Lock()
			a, ok := f.answers[r.URL.Path]
			if ok {
				f.served[r.URL.Path]++
			}
			f.mu.Unlock()
			if ok {
				if a.contentType != "" {
					w.Header().Set("Content-Type", a.contentType)
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(a.body)))
				w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
				status := a.status
				if status == 0 {
					status = http.StatusOK
				}
				w.WriteHeader(status)
				if r.Method == http.MethodGet {
					_, _ = w.Write(a.body)
				}
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *hostileFront) set(path string, a hostileAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[path] = a
}

func (f *hostileFront) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served[path]
}

// hostileEnv is the registry, the front and the blobs the cases share.
type hostileEnv struct {
	reg    *registrytest.Registry
	front  *hostileFront
	host   string // the front's host: every reference goes through it
	kernel []byte // 3 MiB + 123 bytes
	kdesc  ocispec.Descriptor
	cfg    ocispec.Descriptor // the seed's config, "{}"
	good   ocispec.Descriptor // an amd64 "virtualization" OS manifest of kdesc
	amd64  map[string]string  // the annotations of an amd64 "virtualization" image
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	reg := registrytest.Start(t)
	front := newHostileFront(t, reg.Host())
	e := &hostileEnv{reg: reg, front: front, host: strings.TrimPrefix(front.srv.URL, "http://"),
		amd64: map[string]string{"variant": "virtualization", "architecture": "amd64"}}
	e.kernel = fixture.RandomBytes(61, 3<<20+123)
	e.kdesc = e.blob(t, e.kernel, hostileKernelType)
	e.cfg = e.blob(t, []byte(`{}`), hostileConfigType)
	e.good = e.put(t, "", ocispec.MediaTypeImageManifest, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, e.amd64))
	return e
}

// blob pushes data to the registry and returns its descriptor.
func (e *hostileEnv) blob(t *testing.T, data []byte, mt string) ocispec.Descriptor {
	t.Helper()
	d, err := registrytest.PushBlobBytes(context.Background(), e.reg.Host(), hostileRepo, data, mt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// manifest is an OCI manifest (with its mediaType field) as JSON.
func (e *hostileEnv) manifest(cfg *ocispec.Descriptor, layers []ocispec.Descriptor, annotations map[string]string) []byte {
	m := map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "layers": layers}
	if cfg != nil {
		m["config"] = cfg
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	raw, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return raw
}

// index is an OCI index as JSON.
func (e *hostileEnv) index(entries ...ocispec.Descriptor) []byte {
	if entries == nil {
		entries = []ocispec.Descriptor{}
	}
	raw, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": entries})
	if err != nil {
		panic(err)
	}
	return raw
}

// put stores a document in the registry under tag (by digest when tag is
// "") and returns its descriptor. The registry must accept it.
func (e *hostileEnv) put(t *testing.T, tag, mt string, raw []byte) ocispec.Descriptor {
	t.Helper()
	if tag == "" {
		tag = digest.FromBytes(raw).String()
	}
	if _, err := registrytest.PutManifest(context.Background(), e.reg.Host(), hostileRepo, tag, mt, raw); err != nil {
		t.Fatalf("the registry refused the document: %v", err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
}

// serve makes the front answer GET /v2/<repo>/manifests/<id> with raw.
func (e *hostileEnv) serve(id, contentType string, raw []byte) {
	e.front.set("/v2/"+hostileRepo+"/manifests/"+id, hostileAnswer{contentType: contentType, body: raw})
}

// ref is the reference of tag or digest id through the front.
func (e *hostileEnv) ref(id string) string {
	if _, err := digest.Parse(id); err == nil {
		return e.host + "/" + hostileRepo + "@" + id
	}
	return e.host + "/" + hostileRepo + ":" + id
}

// hostileEntry is d as an index entry for os/arch.
func hostileEntry(d ocispec.Descriptor, os, arch string) ocispec.Descriptor {
	d.Platform = &ocispec.Platform{OS: os, Architecture: arch}
	return d
}

// hostileCase is one broken image and what the user must see.
type hostileCase struct {
	name string
	// image builds the image and returns the reference to mount.
	image func(t *testing.T, e *hostileEnv) string
	flags []string
	// A refused image: the exit status and what the last stderr line says.
	code int
	says []string
	// An image that mounts: what it shows (nil for a refused image).
	shows func(t *testing.T, e *hostileEnv, dir string, m *mountProc)
}

// hostileRefusedWithin bounds how long a refusal may take: a broken image
// is refused at once, not after retries.
const hostileRefusedWithin = 10 * time.Second

// hostileHardBound is when runCLI gives up on the process: a hang.
const hostileHardBound = 150 * time.Second

func TestHostileImages(t *testing.T) {
	requireMountable(t)
	e := newHostileEnv(t)
	var observed []string
	record := func(name, what string) { observed = append(observed, fmt.Sprintf("%-58s %s", name, what)) }

	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			ref := tc.image(t, e)
			dir := t.TempDir()
			if tc.shows == nil {
				for _, cmd := range []string{"mount", "inspect"} {
					args := append([]string{cmd, "--plain-http"}, tc.flags...)
					args = append(args, ref)
					if cmd == "mount" {
						args = append(args, "--cache-dir", t.TempDir(), dir)
					}
					start := time.Now()
					// The hard bound is past the daemon's own 2-minute
					// resolve deadline, so that a slow refusal is reported
					// with its time and reason rather than killed.
					_, stderr, code := runCLI(t, hostileHardBound, args...)
					took := time.Since(start)
					hostileNoCrash(t, stderr)
					checkFailure(t, stderr, code, tc.code, tc.says[0])
					last := hostileLastLine(stderr)
					for _, s := range tc.says[1:] {
						if !strings.Contains(last, s) {
							t.Errorf("%s: last stderr line %q does not say %q", cmd, last, s)
						}
					}
					if took > hostileRefusedWithin {
						t.Errorf("%s took %s to refuse the image, more than %s", cmd, took.Round(time.Millisecond), hostileRefusedWithin)
					}
					if isMounted(dir) {
						t.Fatalf("%s left a mount at %s", cmd, dir)
					}
					if cmd == "mount" {
						record(tc.name, fmt.Sprintf("exit %d in %s: %s", code, took.Round(time.Millisecond), last))
					}
				}
				if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
					t.Errorf("mount point after the refusal: %d entries, %v", len(ents), err)
				}
				return
			}
			start := time.Now()
			m := startMount(t, ref, dir, append([]string{"--plain-http"}, tc.flags...)...)
			record(tc.name, fmt.Sprintf("mounted in %s", time.Since(start).Round(time.Millisecond)))
			tc.shows(t, e, dir, m)
			if err := m.terminate(t); err != nil {
				t.Errorf("osimagefs mount exited with %v after SIGTERM", err)
			}
			if isMounted(dir) {
				t.Errorf("still mounted at %s after SIGTERM", dir)
			}
			hostileNoCrash(t, m.stderr.String())
		})
	}
	sort.Strings(observed)
	t.Logf("what the user sees, case by case:\n%s", strings.Join(observed, "\n"))
}

// hostileNoCrash fails on a panic, a data race (the binary is built with
// -race) or a control character the registry smuggled onto the terminal.
func hostileNoCrash(t *testing.T, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "WARNING: DATA RACE", "fatal error:"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr holds %q:\n%s", bad, hostileTail(stderr, 60))
		}
	}
	for _, r := range stderr {
		if r != '\n' && r != '\t' && unicode.IsControl(r) {
			t.Errorf("stderr holds control character %U (terminal escape from the registry?):\n%q", r, hostileTail(stderr, 5))
			break
		}
	}
}

// hostileTail is the last n lines of s.
func hostileTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func hostileLastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	return lines[len(lines)-1]
}

// hostileRead reads n bytes at off of the file at p.
func hostileRead(p string, off int64, n int) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	got, err := f.ReadAt(b, off)
	return b[:got], err
}

// hostileWantEIO asserts that reading n bytes at off of p fails with EIO.
func hostileWantEIO(t *testing.T, p string, off int64, n int) {
	t.Helper()
	b, err := hostileRead(p, off, n)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("read %d bytes at %d of %s: %d bytes, %v; want EIO", n, off, filepath.Base(p), len(b), err)
	}
}

// hostileWantBytes asserts that reading len(want) bytes at off of p gives want.
func hostileWantBytes(t *testing.T, p string, off int64, want []byte) {
	t.Helper()
	b, err := hostileRead(p, off, len(want))
	if err != nil || !bytes.Equal(b, want) {
		t.Errorf("read %d bytes at %d of %s: %d bytes (equal: %v), %v", len(want), off, filepath.Base(p), len(b), bytes.Equal(b, want), err)
	}
}

// hostileList is the sorted names in dir.
func hostileList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func hostileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// hostileWaitLog waits until the daemon's stderr holds every one of want.
func hostileWaitLog(t *testing.T, m *mountProc, within time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := m.stderr.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the daemon did not log %q within %s:\n%s", missing, within, hostileTail(s, 20))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostileLogLine is the first line of the daemon's stderr holding s.
func hostileLogLine(m *mountProc, s string) string {
	for _, l := range strings.Split(m.stderr.String(), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// hostileManyLayers is a manifest of n kernel layers, all the same blob.
func hostileManyLayers(t *testing.T, e *hostileEnv, n int) []byte {
	t.Helper()
	small := e.blob(t, []byte("sixteen bytes..."), hostileKernelType)
	ls := make([]ocispec.Descriptor, n)
	for i := range ls {
		ls[i] = small
	}
	return e.manifest(&e.cfg, ls, e.amd64)
}

func hostileCases() []hostileCase {
	const (
		oci      = ocispec.MediaTypeImageManifest
		ociIndex = ocispec.MediaTypeImageIndex
	)
	kernelPath := func(dir string) string { return filepath.Join(dir, "amd64/virtualization/kernel") }
	// Shared between an image and what it shows.
	var (
		largerData  []byte
		larger      ocispec.Descriptor
		smallerData []byte
		smaller     ocispec.Descriptor
		zeroData    []byte
		titles      []ocispec.Descriptor
		titleData   [][]byte
		dupKernels  [2][]byte
		many        []byte
	)
	return []hostileCase{
		// ---- documents that are not JSON, or not an index or a manifest ----
		{name: "malformed JSON", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("bad-json", oci, []byte(`{"schemaVersion":2,"config":{"mediaType":`))
			return e.ref("bad-json")
		}, code: 1, says: []string{"decode JSON: unexpected end of JSON input", "top document sha256:"}},
		{name: "HTML page instead of a manifest", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("html", "text/html; charset=utf-8", []byte("<!DOCTYPE html><html><body>Please log in</body></html>"))
			return e.ref("html")
		}, code: 1, says: []string{"decode JSON: invalid character '<' looking for beginning of value"}},
		{name: "empty manifest", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("empty", oci, nil)
			return e.ref("empty")
		}, code: 1, says: []string{"decode JSON: unexpected end of JSON input"}},
		{name: "JSON that is neither index nor manifest", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("neither", "application/vnd.example.thing+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json","blobs":[]}`))
			return e.ref("neither")
		}, code: 1, says: []string{`neither an index nor a manifest (media type "application/vnd.example.thing+json", no layers, no config)`}},
		{name: "Docker schema 1 manifest", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("schema1", "application/vnd.docker.distribution.manifest.v1+prettyjws",
				[]byte(`{"schemaVersion":1,"name":"os/hostile","tag":"schema1","architecture":"amd64","fsLayers":[{"blobSum":"`+digest.FromString("x").String()+`"}],"history":[{"v1Compatibility":"{}"}]}`))
			return e.ref("schema1")
		}, code: 1, says: []string{`neither an index nor a manifest (media type "application/vnd.docker.distribution.manifest.v1+prettyjws"`}},
		{name: "document larger than 4 MiB", image: func(t *testing.T, e *hostileEnv) string {
			raw := append([]byte(`{"schemaVersion":2,"layers":[]`), bytes.Repeat([]byte(" "), image.MaxDocumentSize)...)
			e.serve("huge-doc", oci, append(raw, '}'))
			return e.ref("huge-doc")
		}, code: 1, says: []string{"document too large: more than 4194304 bytes"}},
		{
			name: "manifest without mediaType served as an index",
			image: func(t *testing.T, e *hostileEnv) string {
				raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": e.cfg, "layers": []ocispec.Descriptor{e.kdesc}, "annotations": e.amd64})
				e.serve("served-as-index", ociIndex, raw)
				return e.ref("served-as-index")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				hostileWantBytes(t, kernelPath(dir), 0, e.kernel[:4096])
			},
		},
		{
			name: "index without mediaType served as a manifest",
			image: func(t *testing.T, e *hostileEnv) string {
				raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []ocispec.Descriptor{hostileEntry(e.good, "linux", "amd64")}})
				e.serve("served-as-manifest", oci, raw)
				return e.ref("served-as-manifest")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				if got := hostileList(t, dir); strings.Join(got, " ") != "amd64 index.json" {
					t.Errorf("top level %q", got)
				}
				hostileWantBytes(t, kernelPath(dir), 0, e.kernel[:4096])
			},
		},

		// ---- media types ----
		{name: "unknown media types", image: func(t *testing.T, e *hostileEnv) string {
			cfg := e.cfg
			cfg.MediaType = "application/vnd.example.config.v1+json"
			l := e.kdesc
			l.MediaType = "application/vnd.example.layer.v1"
			e.put(t, "unknown-types", oci, e.manifest(&cfg, []ocispec.Descriptor{l}, nil))
			return e.ref("unknown-types")
		}, code: 6, says: []string{"is not an OS image", `config type "application/vnd.example.config.v1+json", 1 layers of types ["application/vnd.example.layer.v1"]`}},
		{name: "no media types at all", image: func(t *testing.T, e *hostileEnv) string {
			cfg, l := e.cfg, e.kdesc
			cfg.MediaType, l.MediaType = "", ""
			raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "config": cfg, "layers": []ocispec.Descriptor{l}})
			e.put(t, "no-types", oci, raw)
			return e.ref("no-types")
		}, code: 6, says: []string{"is not an OS image", `config type "", 1 layers of types [""]`}},
		{name: "empty index", image: func(t *testing.T, e *hostileEnv) string {
			e.put(t, "empty-index", ociIndex, e.index())
			return e.ref("empty-index")
		}, code: 6, says: []string{"is not an OS image: the index lists no manifests"}},

		// ---- sizes ----
		{name: "negative layer size", image: func(t *testing.T, e *hostileEnv) string {
			l := e.kdesc
			l.Size = -1
			e.put(t, "negative-layer", oci, e.manifest(&e.cfg, []ocispec.Descriptor{l}, e.amd64))
			return e.ref("negative-layer")
		}, code: 1, says: []string{"layer 0: " + "sha256:", "negative size -1"}},
		{name: "negative config size", image: func(t *testing.T, e *hostileEnv) string {
			c := e.cfg
			c.Size = -2
			e.put(t, "negative-config", oci, e.manifest(&c, []ocispec.Descriptor{e.kdesc}, e.amd64))
			return e.ref("negative-config")
		}, code: 1, says: []string{"config: sha256:", "negative size -2"}},
		{name: "layer size above the 16 TiB limit", image: func(t *testing.T, e *hostileEnv) string {
			l := e.kdesc
			l.Size = image.MaxLayerSize + 1
			e.put(t, "over-limit", oci, e.manifest(&e.cfg, []ocispec.Descriptor{l}, e.amd64))
			return e.ref("over-limit")
		}, code: 1, says: []string{"layer 0: ", "size 17592186044417 is larger than the limit of 17592186044416"}},
		{name: "layer size beyond int64", image: func(t *testing.T, e *hostileEnv) string {
			raw := bytes.Replace(e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, e.amd64), []byte(fmt.Sprintf(`"size":%d`, e.kdesc.Size)), []byte(`"size":18446744073709551616`), 1)
			e.serve("beyond-int64", oci, raw)
			return e.ref("beyond-int64")
		}, code: 1, says: []string{"decode JSON", "cannot unmarshal number 18446744073709551616"}},
		{name: "layer size as a string", image: func(t *testing.T, e *hostileEnv) string {
			raw := bytes.Replace(e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, e.amd64), []byte(fmt.Sprintf(`"size":%d`, e.kdesc.Size)), []byte(`"size":"3145851"`), 1)
			e.serve("string-size", oci, raw)
			return e.ref("string-size")
		}, code: 1, says: []string{"decode JSON", "cannot unmarshal string into Go struct field"}},
		{name: "config larger than its descriptor says", image: func(t *testing.T, e *hostileEnv) string {
			c := e.blob(t, []byte(`{"commandLine":"console=ttyS0"}`), "application/vnd.ironcore.image.config.v1+json")
			c.Size -= 5
			e.put(t, "config-size", oci, e.manifest(&c, []ocispec.Descriptor{e.kdesc}, e.amd64))
			return e.ref("config-size")
		}, code: 1, says: []string{"config sha256:", "descriptor says 26 bytes, registry sent 31"}},
		{
			name: "layer descriptor larger than the blob",
			image: func(t *testing.T, e *hostileEnv) string {
				largerData = fixture.RandomBytes(62, 8<<20+123)
				larger = e.blob(t, largerData, hostileKernelType)
				larger.Size += 1<<20 + 5
				e.put(t, "size-larger", oci, e.manifest(&e.cfg, []ocispec.Descriptor{larger}, e.amd64))
				return e.ref("size-larger")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				p := kernelPath(dir)
				if got := hostileSize(t, p); got != larger.Size {
					t.Errorf("size %d, want the descriptor's %d", got, larger.Size)
				}
				// Chunks (1 MiB) wholly inside the blob read right.
				hostileWantBytes(t, p, 0, largerData[:4096])
				hostileWantBytes(t, p, 1<<20+12345, largerData[1<<20+12345:1<<20+12345+4096])
				// The chunk that holds the blob's end, and everything
				// after it, fail: never zeros, never short reads.
				real := int64(len(largerData))
				hostileWantEIO(t, p, 8<<20, 100)
				hostileWantEIO(t, p, real, 10)
				hostileWantEIO(t, p, larger.Size-1, 1)
				if b, err := os.ReadFile(p); !errors.Is(err, syscall.EIO) {
					t.Errorf("reading the whole file: %d bytes, %v; want EIO", len(b), err)
				}
				hostileWaitLog(t, m, 5*time.Second, "blob is shorter than its descriptor", larger.Digest.String())
				t.Logf("daemon: %s", hostileLogLine(m, "blob is shorter than its descriptor"))
			},
		},
		{
			name: "layer descriptor smaller than the blob, and zero",
			image: func(t *testing.T, e *hostileEnv) string {
				smallerData = fixture.RandomBytes(63, 3<<20+123)
				smaller = e.blob(t, smallerData, hostileKernelType)
				smaller.Size -= 1000
				zeroData = fixture.RandomBytes(64, 4096)
				zero := e.blob(t, zeroData, hostileInitramfsType)
				zero.Size = 0
				e.put(t, "size-smaller", oci, e.manifest(&e.cfg, []ocispec.Descriptor{smaller, zero}, e.amd64))
				return e.ref("size-smaller")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				p := kernelPath(dir)
				if got := hostileSize(t, p); got != smaller.Size {
					t.Errorf("size %d, want the descriptor's %d", got, smaller.Size)
				}
				zp := filepath.Join(dir, "amd64/virtualization/initramfs")
				if got := hostileSize(t, zp); got != 0 {
					t.Errorf("zero-size layer: size %d", got)
				}
				if b, err := os.ReadFile(zp); err != nil || len(b) != 0 {
					t.Errorf("zero-size layer: read %d bytes, %v", len(b), err)
				}
				// The first whole read gives the blob up to the
				// descriptor's size, byte for byte, unless prefetch or
				// read-ahead completed the blob on disk before the reader
				// got to its end: then verification failed it first, and
				// the rest of the read gets EIO.
				b, err := os.ReadFile(p)
				switch {
				case errors.Is(err, syscall.EIO) && bytes.Equal(b, smallerData[:len(b)]):
					t.Logf("first read: EIO after %d bytes: the blob was complete and failed verification first", len(b))
				case err != nil || !bytes.Equal(b, smallerData[:smaller.Size]):
					t.Fatalf("first read: %d bytes, %v; want the first %d bytes of the blob", len(b), err, smaller.Size)
				}
				// That read made the blob complete in the disk cache,
				// where it fails verification (its bytes up to the
				// descriptor's size do not hash to its digest): from then
				// on its reads fail with EIO, as for any corrupt blob.
				hostileWaitLog(t, m, 10*time.Second, "blob failed verification", smaller.Digest.String())
				t.Logf("daemon: %s", hostileLogLine(m, "blob failed verification"))
				var rerr error
				for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
					dropPageCache(t, p)
					if _, rerr = os.ReadFile(p); rerr != nil {
						break
					}
				}
				if !errors.Is(rerr, syscall.EIO) {
					t.Errorf("after verification: %v, want EIO", rerr)
				}
				t.Logf("daemon: %s", hostileLogLine(m, "read failed"))
			},
		},
		{
			name: "16 TiB layer descriptor of a 3 MiB blob",
			image: func(t *testing.T, e *hostileEnv) string {
				l := e.kdesc
				l.Size = image.MaxLayerSize
				e.put(t, "size-huge", oci, e.manifest(&e.cfg, []ocispec.Descriptor{l}, e.amd64))
				return e.ref("size-huge")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				p := kernelPath(dir)
				if got := hostileSize(t, p); got != image.MaxLayerSize {
					t.Errorf("size %d, want %d", got, int64(image.MaxLayerSize))
				}
				hostileWantBytes(t, p, 0, e.kernel[:4096])
				hostileWantEIO(t, p, 8<<20, 4096)
				hostileWantEIO(t, p, image.MaxLayerSize-4096, 4096)
				t.Logf("daemon: %s", hostileLogLine(m, "read failed"))
			},
		},

		// ---- digests ----
		{name: "manifest does not match its digest", image: func(t *testing.T, e *hostileEnv) string {
			m := e.put(t, "", oci, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, map[string]string{"variant": "original"}))
			e.serve(m.Digest.String(), oci, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, map[string]string{"variant": "tampered"}))
			return e.ref(m.Digest.String())
		}, code: 1, says: []string{"top document: content does not match its digest sha256:"}},
		{name: "index entry does not match its digest", image: func(t *testing.T, e *hostileEnv) string {
			m := e.put(t, "", oci, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, map[string]string{"variant": "tampered"}))
			e.put(t, "tampered-entry", ociIndex, e.index(hostileEntry(m, "linux", "amd64")))
			e.serve(m.Digest.String(), oci, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, map[string]string{"variant": "evil"}))
			return e.ref("tampered-entry")
		}, code: 1, says: []string{`index entry 0 (platform "linux/amd64"): manifest sha256:`, "content does not match its digest"}},
		{name: "config does not match its digest", image: func(t *testing.T, e *hostileEnv) string {
			c := e.blob(t, []byte(`{"commandLine":"console=ttyS0 ro"}`), "application/vnd.ironcore.image.config.v1+json")
			e.put(t, "tampered-config", oci, e.manifest(&c, []ocispec.Descriptor{e.kdesc}, e.amd64))
			e.front.set("/v2/"+hostileRepo+"/blobs/"+c.Digest.String(), hostileAnswer{contentType: "application/octet-stream", body: []byte(`{"commandLine":"init=/bin/sh rw"}`)})
			return e.ref("tampered-config")
		}, code: 1, says: []string{"config sha256:", "content does not match its digest"}},
		{name: "invalid digest in an index entry", image: func(t *testing.T, e *hostileEnv) string {
			e.serve("bad-entry-digest", ociIndex, []byte(`{"schemaVersion":2,"mediaType":"`+ociIndex+`","manifests":[{"mediaType":"`+oci+`","digest":"sha256:../../../etc/passwd","size":100}]}`))
			return e.ref("bad-entry-digest")
		}, code: 1, says: []string{`index entry 0: digest "sha256:../../../etc/passwd": invalid checksum digest length`}},
		{name: "invalid layer digest", image: func(t *testing.T, e *hostileEnv) string {
			raw := bytes.Replace(e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc}, e.amd64), []byte(e.kdesc.Digest.String()), []byte("sha256:zz"), 1)
			e.serve("bad-layer-digest", oci, raw)
			return e.ref("bad-layer-digest")
		}, code: 1, says: []string{`layer 0: digest "sha256:zz"`}},

		// ---- missing documents ----
		{name: "index entry pointing to a missing manifest", image: func(t *testing.T, e *hostileEnv) string {
			gone := ocispec.Descriptor{MediaType: oci, Digest: digest.FromString("no such manifest"), Size: 500}
			e.serve("missing-entry", ociIndex, e.index(hostileEntry(e.good, "linux", "amd64"), hostileEntry(gone, "linux", "arm64")))
			return e.ref("missing-entry")
		}, code: 3, says: []string{"manifest unknown", `index entry 1 (platform "linux/arm64"): fetch manifest ` + digest.FromString("no such manifest").String()}},
		{
			name:  "missing manifest filtered out by --platform",
			flags: []string{"--platform", "linux/amd64"},
			image: func(t *testing.T, e *hostileEnv) string {
				gone := ocispec.Descriptor{MediaType: oci, Digest: digest.FromString("no such manifest"), Size: 500}
				e.serve("missing-entry-filtered", ociIndex, e.index(hostileEntry(e.good, "linux", "amd64"), hostileEntry(gone, "linux", "arm64")))
				return e.ref("missing-entry-filtered")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				if got := hostileList(t, dir); strings.Join(got, " ") != "amd64 index.json" {
					t.Errorf("top level %q, want amd64 and index.json", got)
				}
				hostileWantBytes(t, kernelPath(dir), 0, e.kernel[:4096])
			},
		},
		{name: "manifest pointing to a missing config", image: func(t *testing.T, e *hostileEnv) string {
			c := ocispec.Descriptor{MediaType: hostileConfigType, Digest: digest.FromString("no such config"), Size: 2}
			e.serve("missing-config", oci, e.manifest(&c, []ocispec.Descriptor{e.kdesc}, e.amd64))
			return e.ref("missing-config")
		}, code: 3, says: []string{"blob unknown", "fetch config " + digest.FromString("no such config").String()}},
		{name: "registry error text with terminal escapes", image: func(t *testing.T, e *hostileEnv) string {
			e.front.set("/v2/"+hostileRepo+"/manifests/escapes", hostileAnswer{status: http.StatusNotFound, contentType: "application/json",
				body: []byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"\u001b[2J\u001b[31mgone\u0007\nsecond line"}]}`)})
			return e.ref("escapes")
		}, code: 3, says: []string{"not found"}},

		// ---- names ----
		{
			name: "hostile names in titles, annotations and platforms",
			image: func(t *testing.T, e *hostileEnv) string {
				ts := []string{"../../etc/passwd", "a/b", "x\x00y", "\x1b[31mred", "..", ".", "", "firmware.bin", "firmware.bin", "manifest.json", "kernel", "\u202egpj.exe", "firmware\u200b.bin", "\ufeff\u2067x.bin\u2069", strings.Repeat("t", 256)}
				titles, titleData = nil, nil
				var ls []ocispec.Descriptor
				for i, ti := range ts {
					data := []byte(fmt.Sprintf("layer %d titled %q", i, ti))
					d := e.blob(t, data, hostileUnknownType)
					if ti != "" {
						d.Annotations = map[string]string{"org.opencontainers.image.title": ti}
					}
					titles, titleData = append(titles, d), append(titleData, data)
					ls = append(ls, d)
				}
				// A layer without any media type.
				data := []byte("a layer without a media type")
				d := e.blob(t, data, "")
				titles, titleData = append(titles, d), append(titleData, data)
				ls = append(ls, d)
				// The real kernel comes last: role names win, so it is
				// still kernel and the layer titled "kernel" is kernel-2.
				ls = append(ls, e.kdesc)
				man := e.put(t, "", oci, e.manifest(&e.cfg, ls, map[string]string{"variant": "../../..\n", "architecture": "ignored"}))
				e.put(t, "names", ociIndex, e.index(hostileEntry(man, "linux", "../x\x00")))
				return e.ref("names")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				if got := hostileList(t, dir); strings.Join(got, "|") != ".._x_|index.json" {
					t.Errorf("top level %q", got)
				}
				if got := hostileList(t, filepath.Join(dir, ".._x_")); strings.Join(got, "|") != ".._.._.._" {
					t.Errorf("architecture directory holds %q", got)
				}
				hex := func(i int) string { return "layer-" + titles[i].Digest.Encoded()[:12] }
				want := map[string]int{ // name -> index in titles
					hex(0): 0, hex(1): 1, hex(2): 2, hex(3): 3, hex(4): 4, hex(5): 5, hex(6): 6,
					"firmware.bin": 7, "firmware-2.bin": 8, "manifest-2.json": 9, "kernel-2": 10,
					// Format characters (bidi override, zero-width space, BOM,
					// isolates) would show raw here but escaped by inspect.
					hex(11): 11, hex(12): 12, hex(13): 13, hex(14): 14, hex(15): 15,
				}
				layerDir := filepath.Join(dir, ".._x_", ".._.._.._")
				got := hostileList(t, layerDir)
				wantNames := []string{"config.json", "kernel", "manifest.json"}
				for n := range want {
					wantNames = append(wantNames, n)
				}
				sort.Strings(wantNames)
				if strings.Join(got, "\x00") != strings.Join(wantNames, "\x00") {
					t.Fatalf("layer directory holds\n%q\nwant\n%q", got, wantNames)
				}
				for n, i := range want {
					b, err := os.ReadFile(filepath.Join(layerDir, n))
					if err != nil || !bytes.Equal(b, titleData[i]) {
						t.Errorf("%q: %q, %v; want %q", n, b, err, titleData[i])
					}
				}
				hostileWantBytes(t, filepath.Join(layerDir, "kernel"), 0, e.kernel[:4096])
				// inspect prints the names the mount shows, byte for byte.
				hostileInspectClean(t, e.ref("names"))
				var out struct{ Files []struct{ Path string } }
				if err := json.Unmarshal([]byte(hostileInspectClean(t, "--json", e.ref("names"))), &out); err != nil {
					t.Fatalf("inspect --json: %v", err)
				}
				var inspected []string
				for _, f := range out.Files {
					if d, n := path.Split(f.Path); d == ".._x_/.._.._.._/" {
						inspected = append(inspected, n)
					}
				}
				if strings.Join(inspected, "\x00") != strings.Join(got, "\x00") {
					t.Errorf("inspect --json lists\n%q\nthe mount shows\n%q", inspected, got)
				}
				// Each unknown layer is logged once, quoted.
				if n := strings.Count(m.stderr.String(), "has unknown media type"); n != len(titles) {
					t.Errorf("%d unknown-type warnings, want %d", n, len(titles))
				}
			},
		},
		{
			name:  "terminal escapes in media types and platform",
			image: hostileEscapesImage,
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				if b, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization/escaped.bin")); err != nil || string(b) != "escaped" {
					t.Errorf("escaped.bin: %q, %v", b, err)
				}
				// The daemon's log quotes them (checked for every case);
				// so does inspect --json.
				hostileInspectClean(t, "--json", e.ref("escapes-in-types"))
			},
		},
		{
			name:  "terminal escapes in media types, inspect's table",
			image: hostileEscapesImage,
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				hostileInspectClean(t, e.ref("escapes-in-types"))
			},
		},
		{
			name: "duplicate platforms",
			image: func(t *testing.T, e *hostileEnv) string {
				var ms []ocispec.Descriptor
				for i := range dupKernels {
					dupKernels[i] = fixture.RandomBytes(uint64(70+i), 5000+i)
					k := e.blob(t, dupKernels[i], hostileKernelType)
					ms = append(ms, e.put(t, "", oci, e.manifest(&e.cfg, []ocispec.Descriptor{k}, e.amd64)))
				}
				e.put(t, "duplicates", ociIndex, e.index(hostileEntry(ms[0], "linux", "amd64"), hostileEntry(ms[1], "linux", "amd64"), hostileEntry(ms[0], "linux", "amd64")))
				return e.ref("duplicates")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				if got := hostileList(t, filepath.Join(dir, "amd64")); strings.Join(got, " ") != "virtualization virtualization-2 virtualization-3" {
					t.Errorf("amd64 holds %q", got)
				}
				for d, k := range map[string][]byte{"virtualization": dupKernels[0], "virtualization-2": dupKernels[1], "virtualization-3": dupKernels[0]} {
					if b, err := os.ReadFile(filepath.Join(dir, "amd64", d, "kernel")); err != nil || !bytes.Equal(b, k) {
						t.Errorf("amd64/%s/kernel: %d bytes, %v", d, len(b), err)
					}
				}
				hostileWaitLog(t, m, time.Second,
					"two OS images for amd64/virtualization: this one is shown as amd64/virtualization-2",
					"two OS images for amd64/virtualization: this one is shown as amd64/virtualization-3")
			},
		},

		// ---- nesting and counts ----
		{
			name: "5 indexes deep (the most allowed)",
			image: func(t *testing.T, e *hostileEnv) string {
				d := hostileEntry(e.good, "linux", "amd64")
				for i := 0; i < image.MaxIndexDepth; i++ {
					d = e.put(t, "", ociIndex, e.index(d))
				}
				e.put(t, "deep-ok", ociIndex, e.index(d))
				return e.ref("deep-ok")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				hostileWantBytes(t, kernelPath(dir), 0, e.kernel[:4096])
			},
		},
		{name: "6 indexes deep", image: func(t *testing.T, e *hostileEnv) string {
			d := hostileEntry(e.good, "linux", "amd64")
			for i := 0; i < image.MaxIndexDepth+1; i++ {
				d = e.put(t, "", ociIndex, e.index(d))
			}
			e.put(t, "deep", ociIndex, e.index(d))
			return e.ref("deep")
		}, code: 1, says: []string{"index entry 0 > 0 > 0 > 0 > 0: indexes nested more than 4 deep"}},
		{name: "1,001 index entries", image: func(t *testing.T, e *hostileEnv) string {
			es := make([]ocispec.Descriptor, image.MaxManifests+1)
			for i := range es {
				es[i] = hostileEntry(e.good, "linux", "amd64")
			}
			e.put(t, "many-entries", ociIndex, e.index(es...))
			return e.ref("many-entries")
		}, code: 1, says: []string{"index has 1001 entries, more than the limit of 1000"}},
		{
			name: "10,000 layers (the most allowed)",
			image: func(t *testing.T, e *hostileEnv) string {
				many = hostileManyLayers(t, e, image.MaxLayers)
				e.put(t, "many-layers", oci, many)
				return e.ref("many-layers")
			},
			shows: func(t *testing.T, e *hostileEnv, dir string, m *mountProc) {
				start := time.Now()
				got := hostileList(t, filepath.Join(dir, "amd64/virtualization"))
				t.Logf("ls of %d names took %s", len(got), time.Since(start).Round(time.Millisecond))
				if len(got) != image.MaxLayers+2 {
					t.Errorf("%d names, want %d", len(got), image.MaxLayers+2)
				}
				for _, n := range []string{"kernel", "kernel-2", "kernel-9999", fmt.Sprintf("kernel-%d", image.MaxLayers)} {
					if b, err := os.ReadFile(filepath.Join(dir, "amd64/virtualization", n)); err != nil || string(b) != "sixteen bytes..." {
						t.Errorf("%s: %q, %v", n, b, err)
					}
				}
			},
		},
		{name: "10,001 layers", image: func(t *testing.T, e *hostileEnv) string {
			e.put(t, "too-many-layers", oci, hostileManyLayers(t, e, image.MaxLayers+1))
			return e.ref("too-many-layers")
		}, code: 1, says: []string{"manifest has 10001 layers, more than the limit of 10000"}},
		{name: "10,000-layer manifest listed three times", image: func(t *testing.T, e *hostileEnv) string {
			if many == nil {
				many = hostileManyLayers(t, e, image.MaxLayers)
			}
			d := e.put(t, "", oci, many)
			e.put(t, "fan-out", ociIndex, e.index(hostileEntry(d, "linux", "amd64"), hostileEntry(d, "linux", "arm64"), hostileEntry(d, "linux", "s390x")))
			return e.ref("fan-out")
		}, code: 1, says: []string{`index entry 1 (platform "linux/arm64"): manifest sha256:`, "its 10000 layers would take the tree past the limit of 20000 files (10002 files before it)"}},
	}
}

// hostileEscapesImage is an OS image whose unknown layer has a media type
// full of terminal escapes, listed in an index under an OS name with one.
func hostileEscapesImage(t *testing.T, e *hostileEnv) string {
	l := e.blob(t, []byte("escaped"), "application/x-\x1b[2J\x1b]0;pwned\x07")
	l.Annotations = map[string]string{"org.opencontainers.image.title": "escaped.bin"}
	man := e.put(t, "", ocispec.MediaTypeImageManifest, e.manifest(&e.cfg, []ocispec.Descriptor{e.kdesc, l}, e.amd64))
	e.put(t, "escapes-in-types", ocispec.MediaTypeImageIndex, e.index(hostileEntry(man, "linux\x1b[31m", "amd64")))
	return e.ref("escapes-in-types")
}

// hostileInspectClean runs inspect with args and fails unless it succeeds
// and prints nothing that is not printable (control or format characters,
// odd spaces) but newlines and tabs. It returns what inspect printed.
func hostileInspectClean(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := runCLI(t, 30*time.Second, append([]string{"inspect", "--plain-http"}, args...)...)
	if code != 0 {
		t.Fatalf("inspect %v: exit %d: %s", args, code, stderr)
	}
	hostileNoCrash(t, stderr)
	for _, r := range stdout {
		if r != '\n' && r != '\t' && !unicode.IsPrint(r) {
			t.Errorf("inspect %v prints non-printable character %U:\n%q", args, r, stdout)
			break
		}
	}
	return stdout
}
