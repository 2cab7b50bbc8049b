package layout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// FuzzOpen opens and resolves a layout whose index.json and one document
// are fuzzed ("DOC" in the index stands for that document's digest): it
// must never panic, and never hang.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"DOC","size":2}]}`), []byte(`{}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"DOC","size":180,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.OpenKCM.image.config.v1+json","digest":"DOC","size":2},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"DOC","size":104}]}`),
		[]byte(`{"schemaVersion":2,"manifests":[{"digest":"DOC","size":104}],"subject":{"digest":"DOC","size":1}}`))
	f.Fuzz(func(t *testing.T, index, doc []byte) {
		dir := t.TempDir()
		d := digest.FromBytes(doc)
		write := func(rel string, b []byte) {
			p := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`))
		write("blobs/sha256/"+d.Encoded(), doc)
		write(indexFile, bytes.ReplaceAll(index, []byte("DOC"), []byte(d.String())))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, ref := range []Ref{{Dir: dir}, {Dir: dir, Tag: "latest"}, {Dir: dir, Digest: d}} {
				l, err := Open(context.Background(), ref, Options{})
				if err != nil {
					continue
				}
				_, _ = l.Resolve(context.Background(), nil)
				_, _ = l.Referrers(context.Background(), d, "")
				l.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("hangs")
		}
	})
}
