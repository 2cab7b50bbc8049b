package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/image"
)

func testTree() *image.Tree {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	return &image.Tree{Files: []image.File{
		{Path: "amd64/virtualization/disk.img", Digest: d("disk"), Size: 100},
		{Path: "amd64/virtualization/kernel", Digest: d("kernel"), Size: 10},
		{Path: "amd64/virtualization/manifest.json", Data: []byte("{}"), Size: 2},
		{Path: "arm64/virtualization/disk.img", Digest: d("disk-arm"), Size: 200},
		{Path: "arm64/virtualization/kernel", Digest: d("kernel"), Size: 10}, // the same blob as amd64's
		{Path: "index.json", Data: []byte("{}"), Size: 2},
	}}
}

func labels(ls []fetchLayer) string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Label())
	}
	return strings.Join(out, ", ")
}

func TestSelectLayers(t *testing.T) {
	tests := []struct {
		paths []string
		want  string
	}{
		{nil, "amd64/virtualization/disk.img, amd64/virtualization/kernel (+1 more), arm64/virtualization/disk.img"},
		{[]string{"arm64/virtualization/kernel"}, "arm64/virtualization/kernel"},
		{[]string{"amd64"}, "amd64/virtualization/disk.img, amd64/virtualization/kernel"},
		{[]string{"/amd64/virtualization/", "./arm64/virtualization/disk.img"}, "amd64/virtualization/disk.img, amd64/virtualization/kernel, arm64/virtualization/disk.img"},
		{[]string{"amd64/virtualization/manifest.json"}, ""}, // a document: nothing to fetch
		{[]string{"."}, "amd64/virtualization/disk.img, amd64/virtualization/kernel (+1 more), arm64/virtualization/disk.img"},
	}
	for _, tc := range tests {
		got, err := selectLayers(testTree(), tc.paths)
		if err != nil {
			t.Errorf("selectLayers(%q): %v", tc.paths, err)
			continue
		}
		if labels(got) != tc.want {
			t.Errorf("selectLayers(%q) = %q, want %q", tc.paths, labels(got), tc.want)
		}
	}
}

func TestSelectLayersUnknownPath(t *testing.T) {
	for _, p := range []string{"amd64/virtualization/nope", "amd6", "amd64/virtualization/disk.img/x", "riscv64"} {
		_, err := selectLayers(testTree(), []string{"amd64/virtualization/kernel", p})
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("selectLayers(%q): %v, want a usage error", p, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, `"`+p+`"`) || !strings.Contains(msg, "amd64/virtualization/disk.img, amd64/virtualization/kernel, arm64/virtualization/disk.img") ||
			strings.Contains(msg, "manifest.json") {
			t.Errorf("selectLayers(%q): %q: want it named and the layer files listed", p, msg)
		}
	}
}

func TestFetchSummary(t *testing.T) {
	done := &layerRun{layer: fetchLayer{Digest: "sha256:a", Size: 3 << 20, Paths: []string{"amd64/virtualization/disk.img"}}, cached: 1 << 20, started: true, took: 2 * time.Second}
	done.fetched.Store(2 << 20)
	stopped := &layerRun{layer: fetchLayer{Digest: "sha256:b", Size: 1 << 20, Paths: []string{"amd64/virtualization/kernel"}}, started: true, err: errors.New("context canceled"), interrupted: true}
	waiting := &layerRun{layer: fetchLayer{Digest: "sha256:c", Size: 1 << 20, Paths: []string{"amd64/virtualization/initramfs"}}}
	var b bytes.Buffer
	if err := printFetchSummary(&b, []*layerRun{done, stopped, waiting}, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Logf("\n%s", out)
	for _, want := range []string{
		"amd64/virtualization/disk.img   3MiB  2MiB     1MiB           2s    complete",
		"interrupted", "not started",
		"total: 1 of 3 layers complete, 5MiB: 2MiB fetched, 1MiB cached before, in 3s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}

func TestFetchUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fetch", "--cache-dir", "none", "127.0.0.1:1/os/x:1"}, "--cache-dir none"},
		{[]string{"fetch"}, "REFERENCE"},
		{[]string{"fetch", "--parallel", "0", "127.0.0.1:1/os/x:1"}, "--parallel 0"},
	} {
		_, err := execute(tc.args...)
		if code := exitCode(err); code != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: exit %d, %v; want %d naming %s", tc.args, code, err, exitUsage, tc.want)
		}
	}
}
