package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestPushChunkTablesInspect: push writes a chunk table for a file larger
// than one piece (not for a small one), inspect lists it after the files
// as the chunk table for that file and never as a file, and
// --chunk-tables=false writes none.
func TestPushChunkTablesInspect(t *testing.T) {
	reg := registrytest.Start(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(disk, fixture.RandomBytes(1, 1<<20+3), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kernel, fixture.RandomBytes(2, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tag    string
		flags  []string
		tables int
	}{
		{"default", nil, 1},
		{"off", []string{"--chunk-tables=false"}, 0},
	} {
		t.Run(c.tag, func(t *testing.T) {
			ref := reg.Host() + "/os/tables:" + c.tag
			args := append([]string{"push", "--plain-http", "--quiet", ref, "--arch", "amd64", "--disk", disk, "--kernel", kernel}, c.flags...)
			if out, err := execute(args...); err != nil {
				t.Fatalf("push: %v\n%s", err, out)
			}
			out, err := execute("inspect", "--plain-http", ref)
			if err != nil {
				t.Fatalf("inspect: %v\n%s", err, out)
			}
			t.Logf("inspect:\n%s", out)
			files, tables, _ := strings.Cut(out, "CHUNK TABLE FOR")
			if strings.Contains(files, "chunktable") {
				t.Errorf("inspect shows a chunk table as a file:\n%s", out)
			}
			for _, p := range []string{"amd64/default/disk.img", "amd64/default/kernel"} {
				if !strings.Contains(files, p) {
					t.Errorf("inspect does not list %s:\n%s", p, out)
				}
			}
			rows := strings.Split(strings.TrimSpace(tables), "\n")[1:] // after the heading's rest
			if c.tables == 0 {
				if tables != "" {
					t.Errorf("--chunk-tables=false, yet inspect lists tables:\n%s", out)
				}
			} else if len(rows) != 1 || !strings.HasPrefix(rows[0], "amd64/default/disk.img ") || !strings.Contains(rows[0], "sha256:") {
				t.Errorf("want one row: the chunk table for amd64/default/disk.img; got\n%s", out)
			}

			raw, err := execute("inspect", "--plain-http", "--json", ref)
			if err != nil {
				t.Fatal(err)
			}
			var doc inspectOut
			if err := json.Unmarshal([]byte(raw), &doc); err != nil {
				t.Fatalf("inspect --json: %v\n%s", err, raw)
			}
			if len(doc.ChunkTables) != c.tables {
				t.Fatalf("inspect --json: %d chunk tables, want %d: %+v", len(doc.ChunkTables), c.tables, doc.ChunkTables)
			}
			for _, ct := range doc.ChunkTables {
				var disk inspectFile
				for _, f := range doc.Files {
					if f.Path == "amd64/default/disk.img" {
						disk = f
					}
				}
				if ct.For != disk.Path || ct.Layer != disk.Digest || ct.Size <= 0 {
					t.Errorf("inspect --json chunk table %+v, want one for %+v", ct, disk)
				}
			}
		})
	}
}
