package squashfs

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osimagefs/osimagefs/contents/blockcache"
	"github.com/osimagefs/osimagefs/contents/node"
	"github.com/osimagefs/osimagefs/contents/node/nodetest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// fuzzLimits keep one fuzz input cheap.
var fuzzLimits = node.Limits{Entries: 2000, DirBytes: 1 << 20, Objects: 1 << 16, LinkBytes: 4096, Block: 1 << 20, Depth: 32}

// FuzzSquashfs opens the input as an image and walks all of it (bounded):
// every error must wrap ErrCorrupt, and nothing may panic or hang.
func FuzzSquashfs(f *testing.F) {
	if _, err := exec.LookPath("mksquashfs"); err == nil {
		for _, args := range [][]string{
			{"-comp", "gzip"}, {"-comp", "xz", "-Xbcj", "x86"}, {"-comp", "zstd"},
			{"-comp", "lz4"}, {"-comp", "lzo"}, {"-noI", "-noD", "-noF"},
		} {
			img := tinyImage(f, args...)
			f.Add(img)
			// Mutated headers: counts, block size, table starts.
			for _, m := range []struct{ off, width int }{{16, 4}, {26, 2}, {12, 4}, {64, 8}, {72, 8}, {80, 8}, {48, 8}} {
				b := append([]byte(nil), img...)
				switch m.width {
				case 2:
					binary.LittleEndian.PutUint16(b[m.off:], binary.LittleEndian.Uint16(b[m.off:])+1)
				case 4:
					binary.LittleEndian.PutUint32(b[m.off:], binary.LittleEndian.Uint32(b[m.off:])*2)
				case 8:
					binary.LittleEndian.PutUint64(b[m.off:], binary.LittleEndian.Uint64(b[m.off:])-2)
				}
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fs, err := Open(ctx, nodetest.NewImage(data), int64(len(data)), node.Options{Blocks: blockcache.New(4 << 20), Limits: fuzzLimits})
		if err != nil {
			if !errors.Is(err, node.ErrCorrupt) {
				t.Fatalf("Open: error not ErrCorrupt: %v", err)
			}
			return
		}
		if _, err := walk(ctx, fs, 5000, 3000, 8<<20); err != nil && !errors.Is(err, node.ErrCorrupt) {
			t.Fatalf("walk: error not ErrCorrupt: %v", err)
		}
	})
}

// TestSeeds checks that the committed seed images are valid: they open
// and walk without an error.
func TestSeeds(t *testing.T) {
	paths, err := filepath.Glob("testdata/fuzz/FuzzSquashfs/seed-*")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			body, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
			body, ok2 := strings.CutSuffix(body, ")\n")
			data, err := strconv.Unquote(body)
			if !ok || !ok2 || err != nil {
				t.Fatalf("not a go test fuzz v1 file: %v", err)
			}
			ctx := fixture.Context(t, time.Minute)
			if err := openWalk(ctx, []byte(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
		})
	}
}
