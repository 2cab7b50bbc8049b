package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/osimagefs/osimagefs/blobstore"
	"github.com/osimagefs/osimagefs/profile"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// profileChunk is the chunk size of the boot-profile tests' mounts.
const profileChunk = 64 << 10

// bootImage is a small image to record boots of: a disk, a kernel, an
// initramfs and a cmdline, of pseudo-random bytes.
func bootImage(t *testing.T, host, repo string) randomImage {
	t.Helper()
	return pushRandomImage(t, host, repo, map[string]int{"disk.img": 8 << 20, "kernel": 1<<20 + 123, "initramfs": 2<<20 + 5, "cmdline": 40})
}

// layerOf is the digest and size of the image's file name (disk.img, ...).
func (r randomImage) layerOf(t *testing.T, name string) (digest.Digest, int64) {
	t.Helper()
	for _, f := range r.files {
		if filepath.Base(f.name) == name {
			return digest.FromBytes(f.data), int64(len(f.data))
		}
	}
	t.Fatalf("no %s in the image", name)
	return "", 0
}

// directRead reads n bytes at off of the file at p with O_DIRECT: one FUSE
// read per call, no kernel read-ahead, so the daemon sees exactly it.
func directRead(t *testing.T, p string, off int64, n int) {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer unix.Close(fd)
	buf := alignedBuffer(n)
	for done := 0; done < n; {
		m, err := unix.Pread(fd, buf[done:], off+int64(done))
		if err != nil || m == 0 {
			t.Fatalf("read %s at %d: %d, %v", p, off+int64(done), m, err)
		}
		done += m
	}
}

// bootReads are the reads of a recorded "boot": (file, off, len), in order.
type bootRead struct {
	file string
	off  int64
	n    int
}

var bootReads = []bootRead{
	{"disk.img", 1 << 20, 64 << 10},
	{"kernel", 0, 256 << 10},
	{"disk.img", 1<<20 + 64<<10, 64 << 10}, // extends the first entry
	{"disk.img", 5<<20 + 4096, 4096},
	{"disk.img", 1 << 20, 4096}, // read before: nothing new
	{"disk.img", 0, 128 << 10},
}

// wantProfile is the profile bootReads must give.
func wantProfile(t *testing.T, img randomImage) []profile.Entry {
	disk, _ := img.layerOf(t, "disk.img")
	kernel, _ := img.layerOf(t, "kernel")
	return []profile.Entry{
		{Digest: disk, Off: 1 << 20, Len: 128 << 10},
		{Digest: kernel, Off: 0, Len: 256 << 10},
		{Digest: disk, Off: 5<<20 + 4096, Len: 4096},
		{Digest: disk, Off: 0, Len: 128 << 10},
	}
}

// recordBoot mounts ref with --record file, runs bootReads, and unmounts
// with stop; it returns the profile written.
func recordBoot(t *testing.T, ref, file, cacheDir string, stop func(m *mountProc) error) []profile.Entry {
	t.Helper()
	dir := t.TempDir()
	m := startMount(t, ref, dir, "--plain-http", "--record", file, "--chunk-size", strconv.Itoa(profileChunk),
		"--read-ahead", "0", "--cache-dir", cacheDir)
	for _, r := range bootReads {
		directRead(t, filepath.Join(dir, "amd64/virtualization", r.file), r.off, r.n)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatalf("%s exists before the unmount", file)
	}
	if err := stop(m); err != nil {
		t.Fatalf("unmount: %v\n%s", err, m.stderr.String())
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no profile after the unmount: %v\n%s", err, m.stderr.String())
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("%s has mode %v, want 0644", file, st.Mode().Perm())
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("the recorded profile: %v", err)
	}
	return got
}

// sameRanges compares profiles without their times, and checks the times
// only grow.
func sameRanges(t *testing.T, got, want []profile.Entry) {
	t.Helper()
	var last int64
	for i, e := range got {
		if e.AtMs < last {
			t.Errorf("entry %d: at_ms %d after %d", i, e.AtMs, last)
		}
		last = e.AtMs
		got[i].AtMs = 0
	}
	if !slices.Equal(got, want) {
		t.Fatalf("profile\n%v\nwant\n%v", got, want)
	}
}

// unmountCmd unmounts with umount(8) and waits for the daemon to exit.
func unmountCmd(t *testing.T) func(m *mountProc) error {
	return func(m *mountProc) error {
		if out, err := exec.Command("umount", m.dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount: %v: %s", err, out)
		}
		select {
		case err := <-m.done:
			m.done <- err
			return err
		case <-time.After(15 * time.Second):
			return fmt.Errorf("the daemon did not exit after umount")
		}
	}
}

func sigterm(t *testing.T) func(m *mountProc) error {
	return func(m *mountProc) error { return m.terminate(t) }
}

// fetchedSpans is what the counter served of blob d: the spans of its
// Range headers, in order.
func fetchedSpans(t *testing.T, c *registrytest.Counter, d digest.Digest) [][2]int64 {
	t.Helper()
	var out [][2]int64
	for _, r := range c.Ranges(d.String()) {
		var a, b int64
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &a, &b); err != nil {
			t.Fatalf("request for %s with Range %q", d, r)
		}
		out = append(out, [2]int64{a, b + 1})
	}
	return out
}

// chunkSpans is the chunk-aligned bytes of d that the entries cover,
// merged and sorted.
func chunkSpans(entries []profile.Entry, d digest.Digest, size int64) [][2]int64 {
	var s [][2]int64
	for _, e := range entries {
		if e.Digest == d {
			s = append(s, [2]int64{e.Off / profileChunk * profileChunk, min(size, (e.End()+profileChunk-1)/profileChunk*profileChunk)})
		}
	}
	return mergeSpans(s)
}

func mergeSpans(s [][2]int64) [][2]int64 {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b [2]int64) int { return int(a[0] - b[0]) })
	var out [][2]int64
	for _, x := range s {
		if n := len(out); n > 0 && x[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

func spanBytes(s [][2]int64) int64 {
	var n int64
	for _, x := range s {
		n += x[1] - x[0]
	}
	return n
}

// pushProfile runs osimagefs profile push and checks it published one
// referrer.
func pushProfile(t *testing.T, ref, file string) {
	t.Helper()
	out, stderr, code := runCLI(t, time.Minute, "profile", "push", "--plain-http", ref, file)
	if code != 0 || !strings.Contains(out, "amd64/virtualization sha256:") || !strings.Contains(out, " referrer sha256:") {
		t.Fatalf("profile push: exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	t.Logf("osimagefs profile push: %s", out)
}

// TestBootProfile records a boot's reads with mount --record (stopped by
// umount), pushes the profile, and mounts again with a fresh cache and
// --prefetch auto: before any read, exactly the recorded ranges (in
// chunks) are fetched, each once, and nothing else of any layer.
func TestBootProfile(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := bootImage(t, reg.Host(), "os/boot")
	ref := img.img.ref(reg.Host())
	file := filepath.Join(t.TempDir(), "boot.json")
	got := recordBoot(t, ref, file, t.TempDir(), unmountCmd(t))
	if raw, err := os.ReadFile(file); err == nil {
		t.Logf("%s:\n%s", file, raw)
	}
	want := wantProfile(t, img)
	sameRanges(t, got, want)
	pushProfile(t, ref, file)

	counter := registrytest.NewCountingProxy(t, reg.Host())
	addr := freeAddr(t)
	m := startMount(t, img.img.ref(counter.Host()), t.TempDir(), "--plain-http", "--prefetch", "auto", "--chunk-size", strconv.Itoa(profileChunk),
		"--metrics-addr", addr)
	hostileWaitLog(t, m, 30*time.Second, "boot profile replayed")
	settled(counter)
	t.Logf("the replaying mount: %s\n%s", hostileLogLine(m, "boot profile found"), hostileLogLine(m, "boot profile replayed"))
	for _, f := range img.files {
		d, size := digest.FromBytes(f.data), int64(len(f.data))
		spans := fetchedSpans(t, counter, d)
		wantSpans := chunkSpans(want, d, size)
		if got := mergeSpans(spans); !slices.Equal(got, wantSpans) {
			t.Errorf("%s: fetched %v, want the recorded ranges in chunks %v", f.name, got, wantSpans)
		}
		if got, want := spanBytes(spans), spanBytes(wantSpans); got != want {
			t.Errorf("%s: %d bytes requested, want %d (each chunk once)", f.name, got, want)
		}
		if got, want := counter.BytesFor(d.String()), spanBytes(wantSpans); got != want {
			t.Errorf("%s: %d bytes served, want %d", f.name, got, want)
		}
	}
	// What the metric says the replay sent, by role.
	text := scrape(t, addr)
	for role, name := range map[string]string{"disk": "disk.img", "kernel": "kernel", "initramfs": "initramfs"} {
		d, size := img.layerOf(t, name)
		line := fmt.Sprintf(`osimagefs_profile_replay_bytes_total{role=%q} %d`, role, spanBytes(chunkSpans(want, d, size)))
		if !strings.Contains(text, line+"\n") {
			t.Errorf("/metrics has no %q:\n%s", line, grepLines(text, "osimagefs_profile_replay"))
		}
	}
	// The replay's requests: the disk's three runs and the kernel's one.
	disk, _ := img.layerOf(t, "disk.img")
	if n := counter.RequestsFor(disk.String()); n != 3 {
		t.Errorf("disk.img: %d requests, want 3 (neighbouring ranges merged): %v", n, counter.Ranges(disk.String()))
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// TestBootProfileWarmCache: recorded (and stopped by SIGTERM) on a cache
// that keeps what the boot read, where the kernel is complete (so that
// passthrough would serve it, had --record not turned it off), the
// profile's replay on that cache fetches nothing.
func TestBootProfileWarmCache(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := bootImage(t, reg.Host(), "os/warm")
	ref := img.img.ref(reg.Host())
	file := filepath.Join(t.TempDir(), "boot.json")
	cacheDir := t.TempDir()
	// The kernel complete and verified in the cache: a mount would let the
	// kernel serve it by FUSE passthrough, unseen; --record turns that off.
	if out, stderr, code := runCLI(t, time.Minute, "fetch", "--plain-http", "--quiet", "--chunk-size", strconv.Itoa(profileChunk),
		"--cache-dir", cacheDir, ref, "amd64/virtualization/kernel"); code != 0 {
		t.Fatalf("fetch the kernel: exit %d\n%s\n%s", code, out, stderr)
	}
	sameRanges(t, recordBoot(t, ref, file, cacheDir, sigterm(t)), wantProfile(t, img))
	pushProfile(t, ref, file)

	counter := registrytest.NewCountingProxy(t, reg.Host())
	m := startMount(t, img.img.ref(counter.Host()), t.TempDir(), "--plain-http", "--prefetch", "auto",
		"--chunk-size", strconv.Itoa(profileChunk), "--cache-dir", cacheDir)
	hostileWaitLog(t, m, 30*time.Second, "boot profile found", "boot profile replayed")
	settled(counter)
	for _, f := range img.files {
		if n := counter.BytesFor(digest.FromBytes(f.data).String()); n != 0 {
			t.Errorf("%s: %d bytes fetched with a warm cache, want none: %v", f.name, n, counter.Ranges(digest.FromBytes(f.data).String()))
		}
	}
	if line := hostileLogLine(m, "boot profile replayed"); !strings.Contains(line, "requests=0") {
		t.Errorf("replay with a warm cache: %s", line)
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
}

// checkSmallPrefetch checks that a mount fetched the small files whole
// (kernel, initramfs, cmdline) and nothing of the disk: --prefetch small.
func checkSmallPrefetch(t *testing.T, counter *registrytest.Counter, img randomImage) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		complete := true
		for _, name := range []string{"kernel", "initramfs", "cmdline"} {
			d, size := img.layerOf(t, name)
			complete = complete && counter.BytesFor(d.String()) >= size
		}
		if complete || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	settled(counter)
	for _, name := range []string{"kernel", "initramfs", "cmdline", "disk.img"} {
		d, size := img.layerOf(t, name)
		want := size
		if name == "disk.img" {
			want = 0
		}
		if got := counter.BytesFor(d.String()); got != want {
			t.Errorf("%s: %d bytes fetched, want %d (as --prefetch small)", name, got, want)
		}
	}
}

// TestBootProfileFallback: without a profile, auto (the default) fetches
// what small does.
func TestBootProfileFallback(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := bootImage(t, reg.Host(), "os/noprofile")
	counter := registrytest.NewCountingProxy(t, reg.Host())
	dir := t.TempDir()
	m := startMount(t, img.img.ref(counter.Host()), dir, "--plain-http", "--prefetch", "auto")
	checkSmallPrefetch(t, counter, img)
	if strings.Contains(m.stderr.String(), "boot profile found") {
		t.Errorf("a profile was found for an image without one:\n%s", m.stderr.String())
	}
	if err := m.terminate(t); err != nil {
		t.Fatal(err)
	}
	// The default is auto.
	out, _, code := runCLI(t, 10*time.Second, "mount", "--help")
	if code != 0 || !regexp.MustCompile(`--prefetch string[^\n]*\(default "auto"\)`).MatchString(out) {
		t.Errorf("mount --help does not give auto as --prefetch's default:\n%s", out)
	}
}

// TestBootProfileErrors: profile push refuses a missing file, a digest not
// in the image, an offset past a layer's end and malformed JSON, each with
// a message naming what is wrong and exit status 2, publishing nothing;
// mount --record refuses a file it cannot write; and a hostile profile
// attached by another tool does not break a mount: it warns and falls
// back to small.
func TestBootProfileErrors(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	img := bootImage(t, reg.Host(), "os/badprofile")
	ref := img.img.ref(reg.Host())
	disk, size := img.layerOf(t, "disk.img")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	entry := func(d digest.Digest, off, n int64) string {
		return fmt.Sprintf(`{"digest":%q,"off":%d,"len":%d,"at_ms":0}`, d, off, n)
	}
	stranger := digest.FromString("no layer of this image")
	for _, c := range []struct {
		name, file string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "absent.json"), []string{"read the boot profile", "no such file"}},
		{"digest not in the image", write("stranger.json", "["+entry(disk, 0, 10)+","+entry(stranger, 0, 10)+"]"),
			[]string{"entry 1", stranger.String(), "is no layer of the image"}},
		{"offset past the end", write("past.json", "["+entry(disk, size, 1)+"]"),
			[]string{"entry 0", fmt.Sprintf("bytes %d-%d are past the end of layer %s (%d bytes)", size, size, disk, size)}},
		{"malformed JSON", write("bad.json", `[{"digest": "`+disk.String()+`", "off": 0,`), []string{"bad.json", "invalid boot profile", "entry 0"}},
		{"zero length", write("zero.json", "["+entry(disk, 0, 0)+"]"), []string{"entry 0: len 0: must be positive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := runCLI(t, time.Minute, "profile", "push", "--plain-http", ref, c.file)
			t.Logf("exit %d: %s", code, stderr)
			if code != 2 {
				t.Errorf("exit status %d, want 2\nstdout %s\nstderr %s", code, out, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
	// Nothing was published.
	store, err := blobstore.Open(context.Background(), ref, blobstore.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := store.Referrers(context.Background(), digest.Digest(img.img.digest), ""); err != nil || len(refs) != 0 {
		t.Errorf("referrers after refused pushes: %v, %v", refs, err)
	}

	t.Run("record into a missing directory", func(t *testing.T) {
		_, stderr, code := runCLI(t, 30*time.Second, "mount", "--plain-http", "--record", filepath.Join(dir, "no", "such", "boot.json"), ref, t.TempDir())
		if code != 2 || !strings.Contains(stderr, "--record") {
			t.Errorf("exit %d, want 2 naming --record:\n%s", code, stderr)
		}
	})

	for _, c := range []struct {
		name string
		doc  []byte
		warn string
	}{
		{"unknown digest", []byte("[" + entry(stranger, 0, 10) + "]"), "is no layer of the image"},
		{"past the end", []byte("[" + entry(disk, 0, size+1) + "]"), "past the end"},
		{"malformed", []byte(`[{"digest":`), "invalid boot profile"},
		{"unknown field", []byte(`[{"digest":"` + disk.String() + `","off":0,"len":1,"at_ms":0,"evil":true}]`), "unknown field"},
	} {
		t.Run("hostile referrer: "+c.name, func(t *testing.T) {
			repo := "os/hostile-" + strings.ReplaceAll(c.name, " ", "-")
			hostile := pushRandomImage(t, reg.Host(), repo, map[string]int{"disk.img": 8 << 20, "kernel": 1<<20 + 123, "initramfs": 2<<20 + 5, "cmdline": 40})
			// The same seeds: the same layers as img, so the entries name them.
			attachRawProfile(t, reg.Host(), repo, hostile.img, c.doc)
			counter := registrytest.NewCountingProxy(t, reg.Host())
			m := startMount(t, hostile.img.ref(counter.Host()), t.TempDir(), "--plain-http", "--prefetch", "auto")
			hostileWaitLog(t, m, 30*time.Second, "boot profile not used")
			t.Log(hostileLogLine(m, "boot profile not used"))
			if line := hostileLogLine(m, "boot profile not used"); !strings.Contains(line, c.warn) {
				t.Errorf("the warning does not say %q: %s", c.warn, line)
			}
			checkSmallPrefetch(t, counter, hostile)
			if !isMounted(m.dir) {
				t.Fatal("not mounted any more")
			}
			if err := m.terminate(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// attachRawProfile attaches doc, unchecked, as a boot-profile referrer of
// img, as another tool might: the blob, the empty config, the referrer
// manifest, and the fallback tag's index listing it (Distribution has no
// referrers API).
func attachRawProfile(t *testing.T, host, repo string, img mediaImage, doc []byte) {
	t.Helper()
	ctx := context.Background()
	layer, err := registrytest.PushBlobBytes(ctx, host, repo, doc, profile.MediaType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registrytest.PushBlobBytes(ctx, host, repo, []byte("{}"), ocispec.MediaTypeEmptyJSON); err != nil {
		t.Fatal(err)
	}
	subject, err := manifestDescriptor(ctx, host, repo, img.digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ocispec.DescriptorEmptyJSON
	cfg.Data = nil
	m := ocispec.Manifest{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageManifest, ArtifactType: profile.ArtifactType,
		Config: cfg, Layers: []ocispec.Descriptor{layer}, Subject: &subject}
	raw, _ := json.Marshal(m)
	if _, err := registrytest.PutManifest(ctx, host, repo, digest.FromBytes(raw).String(), ocispec.MediaTypeImageManifest, raw); err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{
		MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw)), ArtifactType: profile.ArtifactType}}}
	rawIdx, _ := json.Marshal(idx)
	if _, err := registrytest.PutManifest(ctx, host, repo, blobstore.FallbackTag(subject.Digest), ocispec.MediaTypeImageIndex, rawIdx); err != nil {
		t.Fatal(err)
	}
}

// manifestDescriptor is the descriptor of the manifest d in repo.
func manifestDescriptor(ctx context.Context, host, repo, d string) (ocispec.Descriptor, error) {
	s, err := blobstore.Open(ctx, host+"/"+repo+"@"+d, blobstore.Options{PlainHTTP: true})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	raw, mt, err := s.Manifest(ctx, ocispec.Descriptor{Digest: digest.Digest(d)})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(d), Size: int64(len(raw))}, nil
}
