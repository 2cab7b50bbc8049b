package blobstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestMirrorBlobRanges: a blob range is asked of the first mirror, by
// digest, with ?ns=<registry>, and the origin sends no blob byte; mirrors
// are tried in file order, the next one when the first is down.
func TestMirrorBlobRanges(t *testing.T) {
	t.Parallel()
	data := fixture.RandomBytes(11, 3<<20+5)
	originReg, origin := startFronted(t)
	mirrorReg := registrytest.Start(t)
	desc := pushTo(t, data, originReg, mirrorReg)
	ref := origin.Host() + "/" + mirrorRepo + ":any"
	const off, n = 1<<20 + 3, 700_000

	t.Run("first mirror", func(t *testing.T) {
		mirror := newTestHost(t, mirrorReg.Host())
		s, _ := openMirrored(t, ref, writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host()}), Options{})
		parts := splitParts(n, 64<<10)
		var done []int
		if err := s.ReadParts(context.Background(), desc.Digest, parts, off, func(i int) { done = append(done, i) }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.Join(parts, nil), data[off:off+n]) {
			t.Fatal("wrong bytes")
		}
		if len(done) != len(parts) {
			t.Fatalf("%d parts done, want %d", len(done), len(parts))
		}
		g := mirror.BlobGets(desc.Digest)
		if len(g) != 1 {
			t.Fatalf("mirror got %d GETs of the blob, want 1", len(g))
		}
		if ns := g[0].Query.Get("ns"); ns != origin.Host() {
			t.Errorf("mirror URL's ns = %q (query %v), want %q", ns, g[0].Query, origin.Host())
		}
		if rng, want := g[0].Header.Get("Range"), fmt.Sprintf("bytes=%d-%d", off, off+n-1); rng != want || g[0].Status != http.StatusPartialContent {
			t.Errorf("mirror got Range %q answered %d, want %q answered 206", rng, g[0].Status, want)
		}
		if og := origin.Gets("blobs", ""); len(og) != 0 {
			t.Errorf("origin got %d blob GETs, want none", len(og))
		}
	})

	t.Run("file order", func(t *testing.T) {
		a, b := newTestHost(t, mirrorReg.Host()), newTestHost(t, mirrorReg.Host())
		for _, order := range [][]*testHost{{a, b}, {b, a}} {
			before := [2]int{len(order[0].BlobGets(desc.Digest)), len(order[1].BlobGets(desc.Digest))}
			dir := writeHostsDir(t, origin.Host(), mirrorSpec{host: order[0].Host()}, mirrorSpec{host: order[1].Host()})
			s, _ := openMirrored(t, ref, dir, Options{})
			mustReadAt(t, s, desc.Digest, data, off, 4096)
			first, second := len(order[0].BlobGets(desc.Digest))-before[0], len(order[1].BlobGets(desc.Digest))-before[1]
			if first != 1 || second != 0 {
				t.Fatalf("first mirror of the file got %d GETs, the second %d: want 1 and 0", first, second)
			}
		}
		if og := origin.Gets("blobs", ""); len(og) != 0 {
			t.Errorf("origin got %d blob GETs, want none", len(og))
		}
	})

	t.Run("first down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := ln.Addr().String()
		ln.Close() // connections are refused
		second := newTestHost(t, mirrorReg.Host())
		s, _ := openMirrored(t, ref, writeHostsDir(t, origin.Host(), mirrorSpec{host: down}, mirrorSpec{host: second.Host()}), Options{})
		start := time.Now()
		mustReadAt(t, s, desc.Digest, data, off, 100_000)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %s", took)
		}
		if g := second.BlobGets(desc.Digest); len(g) != 1 || g[0].Status != http.StatusPartialContent {
			t.Fatalf("second mirror got %d GETs, want 1 answered 206", len(g))
		}
		if og := origin.Gets("blobs", ""); len(og) != 0 {
			t.Errorf("origin got %d blob GETs, want none", len(og))
		}
	})
}

// TestMirrorCapabilities: a mirror without pull is never asked for a blob
// (nor for a manifest by digest); one without resolve is never asked for
// a tag, but is for manifests by digest and blobs; a tag resolves at a
// mirror with resolve.
func TestMirrorCapabilities(t *testing.T) {
	t.Parallel()
	const tag = "v1"
	originReg, origin := startFronted(t)
	resolveReg, resolveOnly := startFronted(t)
	pullReg, pullOnly := startFronted(t)
	img := pushImage(t, tag, originReg, resolveReg, pullReg)
	dir := writeHostsDir(t, origin.Host(),
		mirrorSpec{host: resolveOnly.Host(), caps: `"resolve"`},
		mirrorSpec{host: pullOnly.Host(), caps: `"pull"`})
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":"+tag, dir, Options{})
	ctx := context.Background()

	tree, err := s.Resolve(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Digest != img.manifest.Digest {
		t.Fatalf("resolved to %s, want %s", tree.Digest, img.manifest.Digest)
	}
	if g := resolveOnly.Gets("manifests", tag); len(g) != 1 || g[0].Status != http.StatusOK {
		t.Errorf("mirror with resolve: %d GETs of the tag, want 1 answered 200", len(g))
	}
	if g := pullOnly.Gets("manifests", tag); len(g) != 0 {
		t.Errorf("mirror without resolve was asked for the tag %d times", len(g))
	}
	if g := pullOnly.BlobGets(img.config.Digest); len(g) != 1 {
		t.Errorf("mirror with pull: %d GETs of the config, want 1", len(g))
	}

	raw, _, err := s.Manifest(ctx, img.manifest)
	if err != nil || digest.FromBytes(raw) != img.manifest.Digest {
		t.Fatalf("manifest by digest: %v", err)
	}
	if g := pullOnly.Gets("manifests", img.manifest.Digest.String()); len(g) != 1 {
		t.Errorf("mirror without resolve: %d GETs of the manifest by digest, want 1", len(g))
	}

	mustReadAt(t, s, img.layer.Digest, img.layerData, 1000, 200_000)
	if g := pullOnly.BlobGets(img.layer.Digest); len(g) != 1 {
		t.Errorf("mirror with pull: %d GETs of the layer, want 1", len(g))
	}
	var got []byte
	if err := s.StreamBlob(ctx, img.layer.Digest, func(body io.Reader, _ int64) error {
		var err error
		got, err = io.ReadAll(body)
		return err
	}); err != nil || !bytes.Equal(got, img.layerData) {
		t.Fatalf("stream: %v (bytes right: %v)", err, bytes.Equal(got, img.layerData))
	}

	if g := resolveOnly.Gets("blobs", ""); len(g) != 0 {
		t.Errorf("mirror without pull was asked for %d blobs", len(g))
	}
	if g := resolveOnly.Gets("manifests", img.manifest.Digest.String()); len(g) != 0 {
		t.Errorf("mirror without pull was asked for the manifest by digest %d times", len(g))
	}
	if g := slices.Concat(origin.Gets("blobs", ""), origin.Gets("manifests", "")); len(g) != 0 {
		t.Errorf("origin got %d blob or manifest GETs, want none", len(g))
	}
}

// TestMirrorFilling: a mirror answering a range of a large blob with the
// whole blob (a pull-through cache filling it) is asked once, by one
// request however many reads wait for it, and left alone for that blob for
// fillingFirst while the origin serves it; other blobs still go to it;
// after the wait, when it answers 206, it serves the blob again.
func TestMirrorFilling(t *testing.T) {
	t.Parallel()
	data := fixture.RandomBytes(21, 3<<20)
	other := fixture.RandomBytes(22, 2<<20)
	originReg, origin := startFronted(t)
	desc := pushTo(t, data, originReg)
	otherDesc := pushTo(t, other, originReg)
	fake := newTestHost(t, "")
	fake.Fake(desc.Digest, wholeFake(data, 200*time.Millisecond)) // every reader arrives while the probe waits
	fake.Fake(otherDesc.Digest, rangesFake(other))
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: fake.Host()}), Options{})

	const readers = 16
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			<-start
			off := 1 + int64(i)*150_000
			if err := readAt(t, s, desc.Digest, data, off, 100_000); err != nil {
				t.Errorf("read at %d: %v", off, err)
			}
		})
	}
	close(start)
	wg.Wait()
	probe := fake.BlobGets(desc.Digest)
	if len(probe) != 1 || probe[0].Status != http.StatusOK {
		t.Fatalf("%d concurrent reads made %d requests to the filling mirror, want 1 (answered 200)", readers, len(probe))
	}
	if og := origin.BlobGets(desc.Digest); len(og) != readers {
		t.Fatalf("origin got %d GETs, want %d (one per read)", len(og), readers)
	}

	// While it fills: the origin serves the blob, the mirror the others.
	for i := 0; time.Since(probe[0].Time) < fillingFirst-300*time.Millisecond; i++ {
		mustReadAt(t, s, desc.Digest, data, int64(i)*10_000, 50_000)
		if i == 2 {
			mustReadAt(t, s, otherDesc.Digest, other, 5000, 300_000)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if g := fake.BlobGets(desc.Digest); len(g) != 1 {
		t.Fatalf("the filling mirror got %d GETs of the blob within %s, want only the first", len(g), fillingFirst)
	}
	if g := fake.BlobGets(otherDesc.Digest); len(g) != 1 || g[0].Status != http.StatusPartialContent {
		t.Fatalf("another blob: the mirror got %d GETs, want 1 answered 206", len(g))
	}
	if og := origin.BlobGets(otherDesc.Digest); len(og) != 0 {
		t.Fatalf("another blob: origin got %d GETs, want none", len(og))
	}

	// Filled: it answers ranges, and is asked again once the wait passed.
	fake.Fake(desc.Digest, rangesFake(data))
	deadline := time.Now().Add(5 * time.Second)
	for len(fake.BlobGets(desc.Digest)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the mirror is not asked for the blob again")
		}
		mustReadAt(t, s, desc.Digest, data, 77, 1000)
		time.Sleep(20 * time.Millisecond)
	}
	g := fake.BlobGets(desc.Digest)
	if gap := g[1].Time.Sub(probe[0].Time); gap < fillingFirst || g[1].Status != http.StatusPartialContent {
		t.Fatalf("asked again %s after the first answer (want at least %s), answered %d", gap, fillingFirst, g[1].Status)
	}
	originGets := len(origin.BlobGets(desc.Digest))
	mustReadAt(t, s, desc.Digest, data, 2<<20, 1<<20)
	if len(fake.BlobGets(desc.Digest)) != 3 || len(origin.BlobGets(desc.Digest)) != originGets {
		t.Fatal("a read after the mirror answered 206 did not go to the mirror alone")
	}
}

// TestMirrorSmallWholeBlob: a blob of at most smallWholeBlob that a mirror
// answers whole is read through from it, past byte 0 too; a larger one is
// read from the origin.
func TestMirrorSmallWholeBlob(t *testing.T) {
	t.Parallel()
	originReg, origin := startFronted(t)
	fake := newTestHost(t, "")
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: fake.Host()}), Options{})
	for i, tc := range []struct {
		size       int
		fromMirror bool
	}{
		{600_000, true},
		{smallWholeBlob, true},
		{smallWholeBlob + 1, false},
	} {
		data := fixture.RandomBytes(uint64(31+i), tc.size)
		desc := pushTo(t, data, originReg)
		fake.Fake(desc.Digest, wholeFake(data, 0))
		mustReadAt(t, s, desc.Digest, data, 250_001, 100_000)
		mustReadAt(t, s, desc.Digest, data, int64(tc.size-200_000), 200_000) // up to the end
		parts := splitParts(300_000, 64<<10)
		if err := s.ReadParts(context.Background(), desc.Digest, parts, 7, func(int) {}); err != nil || !bytes.Equal(bytes.Join(parts, nil), data[7:300_007]) {
			t.Fatalf("size %d, parts: %v (bytes right: %v)", tc.size, err, bytes.Equal(bytes.Join(parts, nil), data[7:300_007]))
		}
		mirror, orig := len(fake.BlobGets(desc.Digest)), len(origin.BlobGets(desc.Digest))
		if tc.fromMirror && (mirror != 3 || orig != 0) {
			t.Errorf("size %d: mirror got %d GETs, origin %d: want 3 and 0", tc.size, mirror, orig)
		}
		if !tc.fromMirror && (mirror != 1 || orig != 3) {
			t.Errorf("size %d: mirror got %d GETs, origin %d: want 1 (filling) and 3", tc.size, mirror, orig)
		}
	}
}

// TestMirrorDown: a mirror that cannot be reached, resets or answers 5xx
// is passed over (the origin serves, no error) and not asked again for
// healthFirst; once it answers again it is used again.
func TestMirrorDown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		down, up func(m *testHost, d digest.Digest)
	}{
		{"refused", func(m *testHost, _ digest.Digest) { m.Stop() }, func(m *testHost, _ digest.Digest) { m.Start() }},
		{"reset", func(m *testHost, d digest.Digest) { m.Fake(d, resetFake()) }, func(m *testHost, d digest.Digest) { m.Fake(d, nil) }},
		{"503", func(m *testHost, d digest.Digest) { m.Fake(d, statusFake(http.StatusServiceUnavailable)) }, func(m *testHost, d digest.Digest) { m.Fake(d, nil) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := fixture.RandomBytes(41, 1<<20+1)
			originReg, origin := startFronted(t)
			mirrorReg := registrytest.Start(t)
			desc := pushTo(t, data, originReg, mirrorReg)
			mirror := newTestHost(t, mirrorReg.Host())
			rt := newRoundTrips()
			s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host()}), Options{Transport: rt})

			mustReadAt(t, s, desc.Digest, data, 10, 1000)
			if len(mirror.BlobGets(desc.Digest)) != 1 || len(origin.BlobGets(desc.Digest)) != 0 {
				t.Fatal("the mirror did not serve the first read")
			}

			tc.down(mirror, desc.Digest)
			t0 := time.Now()
			mustReadAt(t, s, desc.Digest, data, 20, 1000)
			if og := origin.BlobGets(desc.Digest); len(og) != 1 {
				t.Fatalf("origin got %d GETs, want 1", len(og))
			}
			asked := rt.blobRequests(mirror.Host())
			for time.Since(t0) < healthFirst-100*time.Millisecond {
				mustReadAt(t, s, desc.Digest, data, 30, 1000)
				time.Sleep(20 * time.Millisecond)
			}
			if n := rt.blobRequests(mirror.Host()); n != asked {
				t.Fatalf("the failed mirror got %d more requests within %s", n-asked, healthFirst)
			}

			tc.up(mirror, desc.Digest)
			served := len(mirror.BlobGets(desc.Digest))
			deadline := time.Now().Add(15 * time.Second)
			for {
				mustReadAt(t, s, desc.Digest, data, 40, 1000)
				g := mirror.BlobGets(desc.Digest)
				if len(g) > served && g[len(g)-1].Status == http.StatusPartialContent {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the mirror is not used again after it came back")
				}
				time.Sleep(50 * time.Millisecond)
			}
			originGets := len(origin.BlobGets(desc.Digest))
			mustReadAt(t, s, desc.Digest, data, 50, 1000)
			if len(origin.BlobGets(desc.Digest)) != originGets {
				t.Fatal("a read after the mirror came back went to the origin")
			}
		})
	}
}

// TestMirrorCutMidBody: a mirror whose answer breaks off halfway leaves
// the parts it delivered done; the origin is asked for the rest only.
func TestMirrorCutMidBody(t *testing.T) {
	t.Parallel()
	data := fixture.RandomBytes(61, 2<<20)
	originReg, origin := startFronted(t)
	mirrorReg := registrytest.Start(t)
	desc := pushTo(t, data, originReg, mirrorReg)
	mirror := newTestHost(t, mirrorReg.Host())
	mirror.Fake(desc.Digest, cutFake(data)) // 210_000 of the 420_000 bytes: parts 0-2 and half of 3
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host()}), Options{})

	const off, part, nparts = 100_003, 60_000, 7
	parts := splitParts(part*nparts, part)
	var done []int
	var doneBytes [][]byte
	err := s.ReadParts(context.Background(), desc.Digest, parts, off, func(i int) {
		done = append(done, i)
		doneBytes = append(doneBytes, bytes.Clone(parts[i]))
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("parts done %v, want each once in order", done)
	}
	for i, p := range doneBytes {
		if !bytes.Equal(p, data[off+i*part:off+(i+1)*part]) || !bytes.Equal(parts[i], p) {
			t.Fatalf("part %d: wrong bytes when done or changed since", i)
		}
	}
	if g := mirror.BlobGets(desc.Digest); len(g) != 1 || g[0].Status != http.StatusPartialContent {
		t.Fatalf("mirror got %d GETs, want 1", len(g))
	}
	og := origin.BlobGets(desc.Digest)
	if want := fmt.Sprintf("bytes=%d-%d", off+3*part, off+nparts*part-1); len(og) != 1 || og[0].Header.Get("Range") != want {
		t.Fatalf("origin got %d GETs (%v), want one of %s", len(og), og, want)
	}
	if n := origin.BlobBytes(desc.Digest); n != 4*part {
		t.Fatalf("origin sent %d bytes, want %d", n, 4*part)
	}
}

// TestMirrorWholeBlobs: with Options.WholeBlobs, a range past byte 0 of a
// blob a mirror is filling fails with ErrRangeIgnored naming the mirror
// (the second at once, without a request), and StreamBlob reads the blob
// whole from that mirror.
func TestMirrorWholeBlobs(t *testing.T) {
	t.Parallel()
	data := fixture.RandomBytes(71, 3<<20+1)
	originReg, origin := startFronted(t)
	desc := pushTo(t, data, originReg)
	fake := newTestHost(t, "")
	fake.Fake(desc.Digest, wholeFake(data, 0))
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: fake.Host()}), Options{WholeBlobs: true})

	for i := range 2 {
		err := readAt(t, s, desc.Digest, data, 1<<20, 4096)
		var ri *RangeIgnoredError
		if !errors.Is(err, ErrRangeIgnored) || !errors.As(err, &ri) || ri.Host != fake.Host() {
			t.Fatalf("read %d: err = %v, want ErrRangeIgnored from %s", i, err, fake.Host())
		}
		if g := fake.BlobGets(desc.Digest); len(g) != 1 {
			t.Fatalf("read %d: the mirror got %d GETs, want 1", i, len(g))
		}
	}
	var got []byte
	if err := s.StreamBlob(context.Background(), desc.Digest, func(body io.Reader, size int64) error {
		var err error
		got, err = io.ReadAll(body)
		return err
	}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stream: %v (bytes right: %v)", err, bytes.Equal(got, data))
	}
	g := fake.BlobGets(desc.Digest)
	if len(g) != 2 || g[1].Header.Get("Range") != "" || g[1].Status != http.StatusOK {
		t.Fatalf("the stream: mirror got %d GETs, want a second, without Range", len(g))
	}
	if og := origin.Gets("blobs", ""); len(og) != 0 {
		t.Fatalf("origin got %d blob GETs, want none", len(og))
	}
}

// originKeychain has credentials for one host only.
type originKeychain struct{ host string }

func (k originKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.host {
		return authn.FromConfig(authn.AuthConfig{Username: "reader", Password: "s3cret"}), nil
	}
	return authn.Anonymous, nil
}

// TestMirrorCredentials: the origin's credentials never go to a mirror,
// and a mirror's hosts.toml headers go to that mirror only.
func TestMirrorCredentials(t *testing.T) {
	t.Parallel()
	originReg, origin := startFronted(t)
	_, m1 := startFronted(t) // has nothing: 404
	m2Reg, m2 := startFronted(t)
	onMirror := fixture.RandomBytes(81, 500_000)
	onOrigin := fixture.RandomBytes(82, 500_000)
	a := pushTo(t, onMirror, originReg, m2Reg)
	b := pushTo(t, onOrigin, originReg)
	dir := writeHostsDir(t, origin.Host(),
		mirrorSpec{host: m1.Host(), header: map[string]string{"X-Mirror-Token": "m1-token"}},
		mirrorSpec{host: m2.Host(), header: map[string]string{"X-Other": "m2-value"}})
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", dir, Options{Keychain: originKeychain{host: origin.Host()}})

	mustReadAt(t, s, a.Digest, onMirror, 1, 10_000)
	mustReadAt(t, s, b.Digest, onOrigin, 1, 10_000)
	if g := m2.BlobGets(a.Digest); len(g) != 1 || g[0].Status != http.StatusPartialContent {
		t.Fatalf("the second mirror got %d GETs of the blob it has, want 1", len(g))
	}
	og := origin.BlobGets(b.Digest)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("reader:s3cret"))
	if len(og) != 1 || og[0].Header.Get("Authorization") != basic {
		t.Fatalf("origin: %d GETs of the blob only it has, want 1 with the keychain's credentials", len(og))
	}
	for name, h := range map[string]*testHost{"first mirror": m1, "second mirror": m2} {
		for _, r := range h.Requests() {
			if a := r.Header.Get("Authorization"); a != "" {
				t.Errorf("%s got Authorization %q on %s %s", name, a, r.Method, r.Path)
			}
		}
	}
	for _, c := range []struct {
		name   string
		h      *testHost
		header string
		want   string // "" when it must not be sent
	}{
		{"first mirror", m1, "X-Mirror-Token", "m1-token"},
		{"first mirror", m1, "X-Other", ""},
		{"second mirror", m2, "X-Other", "m2-value"},
		{"second mirror", m2, "X-Mirror-Token", ""},
		{"origin", origin, "X-Mirror-Token", ""},
		{"origin", origin, "X-Other", ""},
	} {
		gets := c.h.Gets("blobs", "")
		if len(gets) == 0 {
			t.Fatalf("%s got no blob GETs", c.name)
		}
		if c.want != "" {
			for _, r := range gets {
				if got := r.Header.Get(c.header); got != c.want {
					t.Errorf("%s: GET %s has %s %q, want %q", c.name, r.Path, c.header, got, c.want)
				}
			}
			continue
		}
		for _, r := range c.h.Requests() {
			if got := r.Header.Get(c.header); got != "" {
				t.Errorf("%s: %s %s has %s %q, want none", c.name, r.Method, r.Path, c.header, got)
			}
		}
	}
}

// TestMirrorObserver: the HostObserver hears each request's outcome per
// host (filling, missing, ok, error) and the blob bytes each host sent,
// none for a whole-blob answer hung up on.
func TestMirrorObserver(t *testing.T) {
	t.Parallel()
	originReg, origin := startFronted(t)
	big := fixture.RandomBytes(91, 3<<20)
	absent := fixture.RandomBytes(92, 100_000)
	ranged := fixture.RandomBytes(93, 100_000)
	failing := fixture.RandomBytes(94, 100_000)
	dBig, dAbsent, dRanged, dFailing := pushTo(t, big, originReg), pushTo(t, absent, originReg), pushTo(t, ranged, originReg), pushTo(t, failing, originReg)
	fake := newTestHost(t, "") // answers 404 for dAbsent
	fake.Fake(dBig.Digest, wholeFake(big, 0))
	fake.Fake(dRanged.Digest, rangesFake(ranged))
	fake.Fake(dFailing.Digest, statusFake(http.StatusBadGateway))
	events := newHostEvents()
	s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: fake.Host()}), Options{Observer: events})

	mustReadAt(t, s, dBig.Digest, big, 1000, 300_000)
	mustReadAt(t, s, dBig.Digest, big, 2000, 200_000) // known to be filling: no request to the mirror
	mustReadAt(t, s, dAbsent.Digest, absent, 10, 50_000)
	mustReadAt(t, s, dRanged.Digest, ranged, 20, 40_000)
	mustReadAt(t, s, dFailing.Digest, failing, 30, 30_000) // last: the mirror is left alone after it

	requests, bytesSent := events.snapshot()
	m, o := fake.Host()+" mirror ", origin.Host()+" origin "
	wantRequests := map[string]int{
		m + "filling": 1, m + "missing": 1, m + "ok": 1, m + "error": 1,
		o + "ok": 4,
	}
	if fmt.Sprint(requests) != fmt.Sprint(wantRequests) {
		t.Errorf("requests %v,\nwant %v", requests, wantRequests)
	}
	wantBytes := map[string]int64{fake.Host() + " mirror": 40_000, origin.Host() + " origin": 300_000 + 200_000 + 50_000 + 30_000}
	if fmt.Sprint(bytesSent) != fmt.Sprint(wantBytes) {
		t.Errorf("bytes %v,\nwant %v", bytesSent, wantBytes)
	}
}

// TestMirrorOriginUnreachable: with a mirror configured, a registry that
// is down at Open is a warning, and the image resolves (by digest, and by
// tag at a mirror that resolves) and reads through the mirror; without
// mirrors Open fails with ErrUnreachable.
func TestMirrorOriginUnreachable(t *testing.T) {
	t.Parallel()
	originReg := registrytest.Start(t)
	originHost := originReg.Host()
	originReg.Stop()
	mirrorReg, mirror := startFronted(t)
	img := pushImage(t, "v1", mirrorReg)
	dir := writeHostsDir(t, originHost, mirrorSpec{host: mirror.Host()})

	for _, ref := range []string{"@" + img.manifest.Digest.String(), ":v1"} {
		s, lb := openMirrored(t, originHost+"/"+mirrorRepo+ref, dir, Options{})
		if n := lb.Count("registry cannot be reached"); n != 1 {
			t.Errorf("%s: %d warnings that the registry cannot be reached, want 1:\n%s", ref, n, lb)
		}
		tree, err := s.Resolve(context.Background(), nil)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if tree.Digest != img.manifest.Digest {
			t.Fatalf("%s: resolved to %s, want %s", ref, tree.Digest, img.manifest.Digest)
		}
		mustReadAt(t, s, img.layer.Digest, img.layerData, 12345, 100_000)
		// Referrers: the origin gets a few attempts, then the mirror lists
		// them (none here: its fallback tag does not exist).
		refs, err := s.Referrers(context.Background(), img.manifest.Digest, "")
		if err != nil || len(refs) != 0 {
			t.Fatalf("%s: referrers with the origin down = %v, %v; want none, listed by the mirror", ref, refs, err)
		}
		if n := lb.Count("referrers listed by a mirror"); n != 1 {
			t.Errorf("%s: %d warnings that a mirror listed the referrers, want 1:\n%s", ref, n, lb)
		}
	}
	if len(mirror.Gets("manifests", img.manifest.Digest.String())) != 1 || len(mirror.Gets("manifests", "v1")) != 1 {
		t.Error("the mirror was not asked for the manifest by digest and by tag")
	}

	for name, hostsDir := range map[string]string{"no hosts dir": "", "server only": writeHostsDir(t, originHost)} {
		_, err := Open(context.Background(), originHost+"/"+mirrorRepo+":v1", Options{PlainHTTP: true, HostsDir: hostsDir})
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%s: err = %v, want ErrUnreachable", name, err)
		}
	}
}

// writeServerHostsDir writes <dir>/<registry>/hosts.toml whose server is
// another host, server (plain HTTP), and no mirror, and returns dir.
func writeServerHostsDir(t testing.TB, registry, server string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, registry), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("server = %q\ncapabilities = [\"pull\", \"resolve\"]\n", "http://"+server)
	if err := os.WriteFile(filepath.Join(dir, registry, "hosts.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestServerCredentialsByHost: when hosts.toml's server is another host
// than the reference's registry, the server gets the credentials the
// keychain has for the server's host, never those of the reference's
// registry; the reference's registry itself is not contacted.
func TestServerCredentialsByHost(t *testing.T) {
	t.Parallel()
	serverReg, server := startFronted(t)
	named := newTestHost(t, "") // the reference's registry: must see nothing
	data := fixture.RandomBytes(101, 300_000)
	desc := pushTo(t, data, serverReg)
	dir := writeServerHostsDir(t, named.Host(), server.Host())
	ref := named.Host() + "/" + mirrorRepo + ":any"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("reader:s3cret"))

	t.Run("credentials of the reference's registry", func(t *testing.T) {
		before := len(server.Requests())
		s, _ := openMirrored(t, ref, dir, Options{Keychain: originKeychain{host: named.Host()}})
		mustReadAt(t, s, desc.Digest, data, 5, 100_000)
		rs := server.Requests()[before:]
		if g := server.BlobGets(desc.Digest); len(g) != 1 || g[0].Status != http.StatusPartialContent {
			t.Fatalf("server got %d GETs of the blob, want 1 answered 206", len(g))
		}
		for _, r := range rs {
			if a := r.Header.Get("Authorization"); a != "" {
				t.Errorf("server got Authorization %q on %s %s: the reference's registry's credentials", a, r.Method, r.Path)
			}
		}
	})

	t.Run("credentials of the server", func(t *testing.T) {
		before := len(server.BlobGets(desc.Digest))
		s, _ := openMirrored(t, ref, dir, Options{Keychain: originKeychain{host: server.Host()}})
		mustReadAt(t, s, desc.Digest, data, 7, 100_000)
		g := server.BlobGets(desc.Digest)[before:]
		if len(g) != 1 || g[0].Status != http.StatusPartialContent {
			t.Fatalf("server got %d GETs of the blob, want 1 answered 206", len(g))
		}
		if a := g[0].Header.Get("Authorization"); a != basic {
			t.Errorf("server's blob GET has Authorization %q, want the keychain's credentials for it", a)
		}
	})

	if rs := named.Requests(); len(rs) != 0 {
		t.Errorf("the reference's registry got %d requests (first %s %s), want none: hosts.toml names another server", len(rs), rs[0].Method, rs[0].Path)
	}
}

// TestMirrorHeadersStayOnHost: a mirror's hosts.toml header and its
// credentials go to the mirror only: not to the host a blob GET is
// redirected to, nor to the token server of a mirror that asks for a
// bearer token.
func TestMirrorHeadersStayOnHost(t *testing.T) {
	t.Parallel()
	const secret = "X-Mirror-Secret"
	data := fixture.RandomBytes(111, 2<<20+3)
	_, origin := startFronted(t) // has nothing: the mirror must serve
	header := map[string]string{secret: "m-secret"}

	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		storeReg, storage := startFronted(t) // another host, serving the bytes
		desc := pushTo(t, data, storeReg)
		mirror := newTestHost(t, "")
		mirror.Fake(desc.Digest, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://"+storage.Host()+r.URL.Path, http.StatusTemporaryRedirect)
		})
		s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any",
			writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host(), header: header}),
			Options{Keychain: originKeychain{host: mirror.Host()}})

		mustReadAt(t, s, desc.Digest, data, 1<<20+9, 300_000)
		mustReadAt(t, s, desc.Digest, data, 11, 50_000)
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("reader:s3cret"))
		mg := mirror.BlobGets(desc.Digest)
		if len(mg) != 2 {
			t.Fatalf("mirror got %d GETs of the blob, want 2", len(mg))
		}
		for _, r := range mg {
			if r.Status != http.StatusTemporaryRedirect || r.Header.Get(secret) != "m-secret" || r.Header.Get("Authorization") != basic {
				t.Errorf("mirror GET: answered %d, %s %q, Authorization %q; want 307 with the header and the keychain's credentials",
					r.Status, secret, r.Header.Get(secret), r.Header.Get("Authorization"))
			}
		}
		sg := storage.BlobGets(desc.Digest)
		if len(sg) != 2 {
			t.Fatalf("redirect target got %d GETs of the blob, want 2", len(sg))
		}
		for i, r := range sg {
			if r.Status != http.StatusPartialContent || r.Header.Get("Range") != mg[i].Header.Get("Range") {
				t.Errorf("redirect target GET %d: answered %d with Range %q, want 206 with the mirror's Range %q", i, r.Status, r.Header.Get("Range"), mg[i].Header.Get("Range"))
			}
		}
		for _, r := range storage.Requests() {
			if v := r.Header.Get(secret); v != "" {
				t.Errorf("redirect target got %s %q on %s %s", secret, v, r.Method, r.Path)
			}
			if v := r.Header.Get("Authorization"); v != "" {
				t.Errorf("redirect target got Authorization %q on %s %s", v, r.Method, r.Path)
			}
		}
		if og := origin.Gets("blobs", ""); len(og) != 0 {
			t.Errorf("origin got %d blob GETs, want none", len(og))
		}
	})

	t.Run("token server", func(t *testing.T) {
		t.Parallel()
		const token = "tok-for-the-mirror"
		d := digest.FromBytes(data)
		tokenUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/token" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"token":%q,"access_token":%q,"expires_in":300}`, token, token)
		}))
		t.Cleanup(tokenUp.Close)
		tokens := newTestHost(t, tokenUp.Listener.Addr().String())
		// By name: go-containerregistry refuses a realm that is a loopback
		// or private IP literal, unless it is the registry's own host:port.
		_, tokenPort, _ := net.SplitHostPort(tokens.Host())
		challenge := fmt.Sprintf(`Bearer realm="http://localhost:%s/token",service="x"`, tokenPort)
		mirrorUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.Header().Set("WWW-Authenticate", challenge)
				registryError(w, http.StatusUnauthorized)
				return
			}
			if r.URL.Path == "/v2/" {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, "{}")
				return
			}
			if _, got, ok := registrytest.ParseBlobPath(r.URL.Path); ok && got == d.String() {
				rangesFake(data)(w, r)
				return
			}
			registryError(w, http.StatusNotFound)
		}))
		t.Cleanup(mirrorUp.Close)
		mirror := newTestHost(t, mirrorUp.Listener.Addr().String())
		s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any",
			writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host(), header: header}), Options{})

		mustReadAt(t, s, d, data, 3, 200_000)
		mg := mirror.BlobGets(d)
		var served int
		for _, r := range mg {
			if r.Header.Get(secret) != "m-secret" {
				t.Errorf("mirror blob GET without its header (%s %q)", secret, r.Header.Get(secret))
			}
			if r.Status == http.StatusPartialContent {
				served++
				if a := r.Header.Get("Authorization"); a != "Bearer "+token {
					t.Errorf("mirror served a GET with Authorization %q", a)
				}
			}
		}
		if served != 1 {
			t.Fatalf("mirror answered %d of %d blob GETs with 206, want 1", served, len(mg))
		}
		tr := tokens.Requests()
		if len(tr) == 0 {
			t.Fatal("the token server was not asked for a token")
		}
		for _, r := range tr {
			if v := r.Header.Get(secret); v != "" {
				t.Errorf("token server got %s %q on %s %s", secret, v, r.Method, r.Path)
			}
		}
		if og := origin.Gets("blobs", ""); len(og) != 0 {
			t.Errorf("origin got %d blob GETs, want none", len(og))
		}
	})
}

// distrustEnv is an origin and two mirrors, A then B, holding one blob,
// and a Store through them whose first read (r1) A served and whose second
// (r2) B served, A failing meanwhile (A answers again when it returns).
type distrustEnv struct {
	data           []byte
	d              digest.Digest
	origin, a, b   *testHost
	s              *Store
	r1, r2, rOther [2]int64 // off, n; rOther no mirror sent
}

func newDistrustEnv(t *testing.T, seed uint64) *distrustEnv {
	t.Helper()
	e := &distrustEnv{data: fixture.RandomBytes(seed, 2<<20)}
	originReg, origin := startFronted(t)
	mirrorReg := registrytest.Start(t)
	e.d = pushTo(t, e.data, originReg, mirrorReg).Digest
	e.origin, e.a, e.b = origin, newTestHost(t, mirrorReg.Host()), newTestHost(t, mirrorReg.Host())
	e.s, _ = openMirrored(t, origin.Host()+"/"+mirrorRepo+":any",
		writeHostsDir(t, origin.Host(), mirrorSpec{host: e.a.Host()}, mirrorSpec{host: e.b.Host()}), Options{})
	e.r1, e.r2, e.rOther = [2]int64{0, 100_000}, [2]int64{1 << 20, 100_000}, [2]int64{1<<20 + 500_000, 50_000}

	e.read(t, e.r1)
	if len(e.a.BlobGets(e.d)) != 1 || len(e.b.BlobGets(e.d)) != 0 {
		t.Fatal("the first read was not served by the first mirror")
	}
	e.a.Fake(e.d, statusFake(http.StatusServiceUnavailable))
	e.read(t, e.r2)
	if g := e.b.BlobGets(e.d); len(g) != 1 || g[0].Status != http.StatusPartialContent {
		t.Fatalf("the second mirror got %d GETs, want 1 answered 206 while the first fails", len(g))
	}
	if len(e.origin.BlobGets(e.d)) != 0 {
		t.Fatal("the origin was asked while a mirror served")
	}
	return e
}

func (e *distrustEnv) read(t *testing.T, r [2]int64) {
	mustReadAt(t, e.s, e.d, e.data, r[0], int(r[1]))
}

// untilFromA reads r until mirror A serves it (A is up again once its
// health allows a trial).
func (e *distrustEnv) untilFromA(t *testing.T, r [2]int64) {
	t.Helper()
	served := len(e.a.BlobGets(e.d))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.read(t, r)
		if g := e.a.BlobGets(e.d); len(g) > served && g[len(g)-1].Status == http.StatusPartialContent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("mirror A is not used again")
		}
	}
}

// TestMirrorDistrustRange: Distrust blames the hosts that sent the range
// in question: a range only mirror B sent passes over B (only) for the
// blob; a range only the origin sent passes over no one (false); the
// whole blob passes over every mirror that sent bytes of it.
func TestMirrorDistrustRange(t *testing.T) {
	t.Parallel()

	t.Run("a range one mirror sent", func(t *testing.T) {
		t.Parallel()
		e := newDistrustEnv(t, 121)
		if !e.s.Distrust(e.d, e.r2[0]+10, 1000) {
			t.Fatal("Distrust of bytes mirror B sent = false, want true")
		}
		bGets := len(e.b.BlobGets(e.d))
		e.read(t, e.r2) // A still fails: the origin
		e.read(t, e.rOther)
		if n := len(e.b.BlobGets(e.d)) - bGets; n != 0 {
			t.Fatalf("mirror B got %d GETs of the blob after it was distrusted for it", n)
		}
		if og := len(e.origin.BlobGets(e.d)); og != 2 {
			t.Fatalf("origin got %d GETs, want 2 (the distrusted range again, and another)", og)
		}
		if e.s.Distrust(e.d, e.rOther[0], e.rOther[1]) {
			t.Error("Distrust of bytes only the origin sent = true, want false")
		}
		if e.s.Distrust(e.d, e.r2[0], e.r2[1]) {
			t.Error("Distrust of bytes B sent, then the origin again, = true: the origin sent them last")
		}
		// A is not distrusted: once it answers again it serves the blob.
		e.a.Fake(e.d, nil)
		e.untilFromA(t, e.r2)
		e.read(t, e.r1)
		if n := len(e.b.BlobGets(e.d)) - bGets; n != 0 {
			t.Fatalf("mirror B got %d GETs of the blob after it was distrusted for it", n)
		}
		if !e.s.Distrust(e.d, e.r1[0], e.r1[1]) {
			t.Error("Distrust of bytes mirror A sent = false, want true")
		}
	})

	t.Run("the whole blob", func(t *testing.T) {
		t.Parallel()
		e := newDistrustEnv(t, 122)
		e.a.Fake(e.d, nil)
		if !e.s.Distrust(e.d, 0, -1) {
			t.Fatal("Distrust of the whole blob = false, want true")
		}
		aGets, bGets := len(e.a.BlobGets(e.d)), len(e.b.BlobGets(e.d))
		// Past A's health wait, so that only distrust keeps it away.
		for start := time.Now(); time.Since(start) < healthMax/4; time.Sleep(50 * time.Millisecond) {
			e.read(t, e.r1)
			if e.s.mirrors[0].health.usable() && time.Since(start) > 2*healthFirst {
				break
			}
		}
		if !e.s.mirrors[0].health.usable() {
			t.Fatal("mirror A's health does not come back")
		}
		e.read(t, e.r1)
		e.read(t, e.r2)
		if a, b := len(e.a.BlobGets(e.d))-aGets, len(e.b.BlobGets(e.d))-bGets; a != 0 || b != 0 {
			t.Fatalf("after Distrust of the whole blob, mirror A got %d GETs and B %d, want none", a, b)
		}
		if e.s.Distrust(e.d, 0, -1) {
			t.Error("Distrust of the whole blob after the origin sent every range asked = true, want false")
		}
	})

	t.Run("an answer in flight", func(t *testing.T) {
		t.Parallel()
		data := fixture.RandomBytes(123, 2<<20)
		originReg, origin := startFronted(t)
		desc := pushTo(t, data, originReg)
		mirror := newTestHost(t, "")
		mirror.Fake(desc.Digest, rangesFake(data))
		s, _ := openMirrored(t, origin.Host()+"/"+mirrorRepo+":any", writeHostsDir(t, origin.Host(), mirrorSpec{host: mirror.Host()}), Options{})
		mustReadAt(t, s, desc.Digest, data, 0, 100_000)

		arrived, release := make(chan struct{}), make(chan struct{})
		mirror.Fake(desc.Digest, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-release
			rangesFake(data)(w, r)
		})
		readDone := make(chan error, 1)
		go func() { readDone <- readAt(t, s, desc.Digest, data, 1<<20, 100_000) }()
		<-arrived
		if !s.Distrust(desc.Digest, 0, 100_000) {
			t.Fatal("Distrust of bytes the mirror sent = false, want true")
		}
		close(release) // it answers 206 now
		if err := <-readDone; err != nil {
			t.Fatalf("the read in flight: %v", err)
		}
		mirror.Fake(desc.Digest, rangesFake(data))
		gets := len(mirror.BlobGets(desc.Digest))
		mustReadAt(t, s, desc.Digest, data, 0, 100_000)
		mustReadAt(t, s, desc.Digest, data, 1<<20, 100_000)
		if n := len(mirror.BlobGets(desc.Digest)) - gets; n != 0 {
			t.Fatalf("the mirror got %d GETs of the blob after it was distrusted: its 206 in flight brought it back", n)
		}
		if og := len(origin.BlobGets(desc.Digest)); og != 2 {
			t.Fatalf("origin got %d GETs, want 2", og)
		}
	})
}
