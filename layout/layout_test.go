package layout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/image"
)

func TestParseRef(t *testing.T) {
	base := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain, colon := mk("plain"), mk("with:colon")
	mk("nested") // base/nested exists, so does base/nested:x below
	both := mk("nested:x")
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("x")
	for _, tc := range []struct {
		in      string
		want    Ref
		wantErr error  // with errors.Is, when set
		errHas  string // in the message, when set
	}{
		{in: plain, want: Ref{Dir: plain}},
		{in: plain + ":1.0", want: Ref{Dir: plain, Tag: "1.0"}},
		{in: plain + "@" + d.String(), want: Ref{Dir: plain, Digest: d}},
		{in: plain + ":docker.io/library/debian:13", want: Ref{Dir: plain, Tag: "docker.io/library/debian:13"}},
		{in: plain + ":name@x", want: Ref{Dir: plain, Tag: "name@x"}},
		{in: colon, want: Ref{Dir: colon}},
		{in: colon + ":tag", want: Ref{Dir: colon, Tag: "tag"}},
		{in: colon + "@" + d.String(), want: Ref{Dir: colon, Digest: d}},
		// The longest directory wins.
		{in: both, want: Ref{Dir: both}},
		{in: both + ":y", want: Ref{Dir: both, Tag: "y"}},
		{in: base + "/nested:y", want: Ref{Dir: base + "/nested", Tag: "y"}},
		{in: "", wantErr: ErrBadReference, errHas: "no layout directory"},
		{in: plain + ":", wantErr: ErrBadReference, errHas: "empty tag"},
		{in: plain + "@sha256:nothex", wantErr: ErrBadReference, errHas: "is not a digest"},
		{in: base + "/missing:1.0", wantErr: ErrNotFound, errHas: base + "/missing"},
		{in: base + "/missing", wantErr: ErrNotFound, errHas: base + "/missing"},
		{in: base + "/file", wantErr: ErrInvalid, errHas: "not a directory"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRef(tc.in)
			if tc.wantErr == nil && tc.errHas == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				if got.String() != tc.in {
					t.Errorf("String() = %q, want %q", got.String(), tc.in)
				}
				return
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("got %+v, %v; want an error (%v) saying %q", got, err, tc.wantErr, tc.errHas)
			}
		})
	}
}

func TestOpenRefusesWhatIsNotALayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(l *testLayout)
		wantErr error
		errHas  []string
	}{
		{"no oci-layout file", func(l *testLayout) { os.Remove(filepath.Join(l.dir, layoutFile)) }, ErrInvalid, []string{"no oci-layout file"}},
		{"oci-layout is garbage", func(l *testLayout) { l.file(layoutFile, []byte("{not json")) }, ErrInvalid, []string{"/oci-layout"}},
		{"oci-layout of version 2", func(l *testLayout) { l.file(layoutFile, []byte(`{"imageLayoutVersion":"2.0.0"}`)) }, ErrInvalid, []string{"/oci-layout", `"2.0.0"`, "not supported"}},
		{"oci-layout without a version", func(l *testLayout) { l.file(layoutFile, []byte(`{}`)) }, ErrInvalid, []string{"/oci-layout", `""`}},
		{"oci-layout is a directory", func(l *testLayout) {
			os.Remove(filepath.Join(l.dir, layoutFile))
			os.Mkdir(filepath.Join(l.dir, layoutFile), 0o755)
		}, ErrInvalid, []string{"/oci-layout", "not a regular file"}},
		{"oci-layout is huge", func(l *testLayout) { l.file(layoutFile, bytes.Repeat([]byte(" "), 1<<20)) }, ErrTooLarge, []string{"/oci-layout"}},
		{"no index.json", func(l *testLayout) { os.Remove(filepath.Join(l.dir, indexFile)) }, ErrInvalid, []string{"no index.json file"}},
		{"index.json is garbage", func(l *testLayout) { l.file(indexFile, []byte("\x00\x01garbage")) }, ErrInvalid, []string{"/index.json"}},
		{"index.json is a JSON array", func(l *testLayout) { l.file(indexFile, []byte(`[1,2]`)) }, ErrInvalid, []string{"/index.json"}},
		{"index.json of schema version 1", func(l *testLayout) { l.file(indexFile, []byte(`{"schemaVersion":1,"manifests":[]}`)) }, ErrInvalid, []string{"/index.json", "schemaVersion 1"}},
		{"index.json is a manifest", func(l *testLayout) {
			l.file(indexFile, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`))
		}, ErrInvalid, []string{"/index.json", "mediaType"}},
		{"index.json without manifests", func(l *testLayout) { l.file(indexFile, []byte(`{"schemaVersion":2}`)) }, ErrInvalid, []string{"/index.json", "no manifests"}},
		{"an entry's digest leaves blobs/", func(l *testLayout) {
			l.file(indexFile, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../etc/passwd","size":10}]}`))
		}, ErrInvalid, []string{"/index.json", "entry 0", "sha256:../../../etc/passwd"}},
		{"an entry of an unknown algorithm", func(l *testLayout) {
			l.file(indexFile, []byte(`{"schemaVersion":2,"manifests":[{"digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":10}]}`))
		}, ErrInvalid, []string{"/index.json", "entry 0"}},
		{"an entry of negative size", func(l *testLayout) {
			l.file(indexFile, []byte(`{"schemaVersion":2,"manifests":[{"digest":"`+digest.FromString("x").String()+`","size":-1}]}`))
		}, ErrInvalid, []string{"/index.json", "size -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLayout(t)
			l.entry(l.osImage("amd64", map[string][]byte{"kernel": []byte("k")}), "1.0")
			tc.breakIt(l)
			_, err := l.open(l.dir + ":1.0")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			for _, s := range append(tc.errHas, l.dir) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}

	t.Run("a missing directory", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "gone")
		_, err := Open(context.Background(), Ref{Dir: missing}, Options{})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("got %v, want ErrNotFound naming %s", err, missing)
		}
	})
}

func TestSelect(t *testing.T) {
	l := newTestLayout(t)
	a := l.osImage("amd64", map[string][]byte{"kernel": []byte("kernel a")})
	b := l.osImage("arm64", map[string][]byte{"kernel": []byte("kernel b")})
	c := l.osImage("riscv64", map[string][]byte{"kernel": []byte("kernel c")})
	nested := l.osImage("s390x", map[string][]byte{"kernel": []byte("kernel n")})
	unlisted := l.osImage("ppc64le", map[string][]byte{"kernel": []byte("kernel u")})

	t.Run("the only image", func(t *testing.T) {
		l := newTestLayout(t)
		img := l.osImage("amd64", map[string][]byte{"kernel": []byte("k")})
		l.entry(img, "")
		// A referrer of it does not count as a second image.
		l.entry(l.referrer(img, image.ArtifactTypeChunkTables), "")
		if got := l.mustOpen(l.dir).Top(); got.Digest != img.Digest {
			t.Fatalf("top %s, want %s", got.Digest, img.Digest)
		}
	})

	l.entry(a, "1.0")
	l.entry(a, "stable") // one image under two tags
	l.entry(b, "2.0")
	l.entry(c, "")
	l.entry(l.indexOf(nested), "")

	t.Run("several and none tagged latest", func(t *testing.T) {
		_, err := l.open(l.dir)
		if !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("got %v, want ErrAmbiguous", err)
		}
		for _, s := range []string{"its tags: 1.0, 2.0, stable", c.Digest.String(), "oci:" + l.dir + ":TAG", "/index.json"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	})
	for _, tc := range []struct {
		ref  string
		want digest.Digest
	}{
		{":1.0", a.Digest},
		{":stable", a.Digest},
		{":2.0", b.Digest},
		{"@" + c.Digest.String(), c.Digest},
		{"@" + nested.Digest.String(), nested.Digest},
		{"@" + unlisted.Digest.String(), unlisted.Digest},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			top := l.mustOpen(l.dir + tc.ref).Top()
			if top.Digest != tc.want || top.MediaType != ocispec.MediaTypeImageManifest {
				t.Fatalf("top %+v, want %s, a manifest", top, tc.want)
			}
		})
	}
	t.Run("a tag index.json lacks", func(t *testing.T) {
		_, err := l.open(l.dir + ":3.0")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"3.0"`) || !strings.Contains(err.Error(), "its tags: 1.0, 2.0, stable") {
			t.Fatalf("got %v, want ErrNotFound naming the tag and the tags there are", err)
		}
	})
	t.Run("a digest the layout lacks", func(t *testing.T) {
		d := digest.FromString("nothing")
		_, err := l.open(l.dir + "@" + d.String())
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), d.String()) {
			t.Fatalf("got %v, want ErrNotFound naming %s", err, d)
		}
	})

	l.entry(b, "latest")
	t.Run("several and one tagged latest", func(t *testing.T) {
		if got := l.mustOpen(l.dir).Top(); got.Digest != b.Digest {
			t.Fatalf("top %s, want the latest, %s", got.Digest, b.Digest)
		}
	})
	l.entry(c, "latest")
	t.Run("a tag on two images", func(t *testing.T) {
		for _, ref := range []string{l.dir, l.dir + ":latest"} {
			_, err := l.open(ref)
			if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), b.Digest.String()) || !strings.Contains(err.Error(), c.Digest.String()) {
				t.Fatalf("%s: got %v, want ErrAmbiguous naming both", ref, err)
			}
		}
	})
}

func TestResolve(t *testing.T) {
	kernel, disk := []byte("a kernel"), bytes.Repeat([]byte("disk"), 5000)
	t.Run("the tree of an index of two images", func(t *testing.T) {
		l := newTestLayout(t)
		amd := l.osImage("amd64", map[string][]byte{"kernel": kernel, "disk.img": disk})
		arm := l.osImage("arm64", map[string][]byte{"kernel": kernel})
		amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
		arm.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
		l.entry(l.indexOf(amd, arm), "1.0")
		tree, err := l.mustOpen(l.dir+":1.0").Resolve(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, f := range tree.Files {
			paths = append(paths, f.Path)
		}
		want := "amd64/virtualization/cmdline amd64/virtualization/config.json amd64/virtualization/disk.img amd64/virtualization/kernel amd64/virtualization/manifest.json " +
			"arm64/virtualization/cmdline arm64/virtualization/config.json arm64/virtualization/kernel arm64/virtualization/manifest.json index.json"
		if got := strings.Join(paths, " "); got != want {
			t.Fatalf("tree:\n%s\nwant:\n%s", got, want)
		}
		p, _ := image.ParsePlatform("linux/arm64")
		tree, err = l.mustOpen(l.dir+":1.0").Resolve(context.Background(), []image.Platform{p})
		if err != nil || len(tree.Images) != 1 || tree.Images[0].Dir != "arm64/virtualization" {
			t.Fatalf("--platform linux/arm64: %v, %+v", err, tree)
		}
	})

	for _, tc := range []struct {
		name    string
		breakIt func(l *testLayout, layer digest.Digest)
		wantErr error
		errHas  []string
	}{
		{"a layer's blob file is missing", func(l *testLayout, d digest.Digest) { os.Remove(l.blobPath(d)) }, ErrNotFound, []string{"amd64/virtualization/disk.img", "no such file"}},
		{"a layer's blob file is shorter than its descriptor", func(l *testLayout, d digest.Digest) { os.Truncate(l.blobPath(d), 100) }, ErrInvalid, []string{"is 100 bytes, its descriptor says 20000"}},
		{"a layer's blob file is longer", func(l *testLayout, d digest.Digest) {
			os.WriteFile(l.blobPath(d), append(bytes.Clone(disk), 'x'), 0o644)
		}, ErrInvalid, []string{"is 20001 bytes"}},
		{"a layer's blob file is a link out of the layout", func(l *testLayout, d digest.Digest) {
			os.Remove(l.blobPath(d))
			outside := filepath.Join(t.TempDir(), "secret")
			os.WriteFile(outside, disk, 0o600)
			os.Symlink(outside, l.blobPath(d))
		}, ErrInvalid, []string{"amd64/virtualization/disk.img"}},
		{"blobs/sha256 is a link out of the layout", func(l *testLayout, d digest.Digest) {
			outside := t.TempDir()
			os.Rename(filepath.Join(l.dir, "blobs", "sha256"), filepath.Join(outside, "sha256"))
			os.Symlink(filepath.Join(outside, "sha256"), filepath.Join(l.dir, "blobs", "sha256"))
		}, ErrInvalid, []string{"/blobs/sha256/"}},
		{"a layer's blob file is a FIFO", func(l *testLayout, d digest.Digest) {
			os.Remove(l.blobPath(d))
			if err := syscall.Mkfifo(l.blobPath(d), 0o644); err != nil {
				t.Fatalf("mkfifo: %v", err)
			}
		}, ErrInvalid, []string{"not a regular file"}},
		{"a layer's blob file is a directory", func(l *testLayout, d digest.Digest) {
			os.Remove(l.blobPath(d))
			os.Mkdir(l.blobPath(d), 0o755)
		}, ErrInvalid, []string{"not a regular file"}},
		{"the manifest is missing", func(l *testLayout, d digest.Digest) { os.Remove(l.blobPath(l.index.Manifests[0].Digest)) }, ErrNotFound, []string{"no such file"}},
		{"the manifest is garbage of the right size", func(l *testLayout, d digest.Digest) {
			top := l.index.Manifests[0]
			os.WriteFile(l.blobPath(top.Digest), bytes.Repeat([]byte("x"), int(top.Size)), 0o644)
		}, nil, []string{"does not match its digest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLayout(t)
			img := l.osImage("amd64", map[string][]byte{"kernel": kernel, "disk.img": disk})
			l.entry(img, "1.0")
			tc.breakIt(l, digest.FromBytes(disk))
			done := make(chan error, 1)
			go func() {
				lay, err := l.open(l.dir + ":1.0")
				if err == nil {
					_, err = lay.Resolve(context.Background(), nil)
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Open and Resolve hang")
			}
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestReadParts(t *testing.T) {
	l := newTestLayout(t)
	data := bytes.Repeat([]byte("0123456789"), 1000)
	img := l.osImage("amd64", map[string][]byte{"disk.img": data})
	l.entry(img, "")
	lay := l.mustOpen(l.dir)
	d := digest.FromBytes(data)
	ctx := context.Background()

	parts := [][]byte{make([]byte, 10), make([]byte, 3000), make([]byte, 7)}
	var done []int
	if err := lay.ReadParts(ctx, d, parts, 5, func(i int) { done = append(done, i) }); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(parts, nil); !bytes.Equal(got, data[5:5+3017]) || len(done) != 3 || done[2] != 2 {
		t.Fatalf("wrong bytes, or parts done %v", done)
	}

	// A file shorter than the range asked for: where it ends, and its
	// size, as lazy reads it.
	parts = [][]byte{make([]byte, 100), make([]byte, 100)}
	done = nil
	err := lay.ReadParts(ctx, d, parts, int64(len(data))-150, func(i int) { done = append(done, i) })
	var short *ShortBlobError
	if !errors.As(err, &short) || short.BlobSize() != int64(len(data)) || short.Off != int64(len(data)) || len(done) != 1 || !strings.Contains(err.Error(), l.blobPath(d)) {
		t.Fatalf("got %v (parts done %v), want a *ShortBlobError at %d naming the file", err, done, len(data))
	}

	// A blob the layout lacks.
	if err := lay.ReadParts(ctx, digest.FromString("x"), parts, 0, func(int) {}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing blob: %v, want ErrNotFound", err)
	}
	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := lay.ReadParts(cctx, d, parts, 0, func(int) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled read: %v", err)
	}
	// StreamBlob gives the whole file.
	var got []byte
	if err := lay.StreamBlob(ctx, d, func(r io.Reader, size int64) error {
		var err error
		got, err = io.ReadAll(r)
		if size != int64(len(data)) {
			t.Errorf("size %d", size)
		}
		return err
	}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("StreamBlob: %v", err)
	}
	// Reads after Close fail.
	lay.Close()
	if err := lay.ReadParts(ctx, digest.FromBytes([]byte("a kernel")), parts, 0, func(int) {}); err == nil {
		t.Fatal("a read after Close succeeded")
	}
}
