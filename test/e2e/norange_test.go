package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// TestFaultRangeIgnoredOneStream mounts through a proxy that drops the
// Range header (the registry then answers every blob GET with the whole
// blob) and reads the end of a large layer from several readers while
// `cat` reads all of it: every byte is right, the layer crosses the wire
// about once (one shared stream, not one per read), and the daemon warns
// once that the host ignores Range.
func TestFaultRangeIgnoredOneStream(t *testing.T) {
	requireMountable(t)
	reg := registrytest.Start(t)
	const size = 64<<20 + 12345
	img := pushRandomImage(t, reg.Host(), "os/norange", map[string]int{"disk.img": size})
	data := img.files[0].data
	front := faulty.New(t, reg.Host())
	front.Inject(0, faulty.IgnoreRange())
	counter := registrytest.NewCountingProxy(t, front.Host())
	dir := t.TempDir()
	m := startMount(t, img.img.ref(counter.Host()), dir, "--plain-http", "--read-timeout", "30s")
	path := filepath.Join(dir, "amd64/virtualization/disk.img")

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for _, off := range []int64{size - 1, size - 4096, size - 1<<20 - 7, size - 3<<20, size - 5<<20 + 99, size - 9<<20} {
		wg.Go(func() {
			f, err := os.Open(path)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			p := make([]byte, min(4096, size-off))
			if n, err := f.ReadAt(p, off); n != len(p) || !bytes.Equal(p, data[off:off+int64(n)]) {
				errs <- fmt.Errorf("pread at %d: %d bytes, %v, right: %v", off, n, err, bytes.Equal(p[:n], data[off:off+int64(n)]))
			}
		})
	}
	wg.Go(func() {
		out, err := exec.Command("cat", path).Output()
		if err != nil || !bytes.Equal(out, data) {
			errs <- fmt.Errorf("cat: %d bytes, %v, right: %v", len(out), err, bytes.Equal(out, data))
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	settled(counter)
	layer := img.img.layers["disk.img"].Digest.String()
	moved := counter.BytesFor(layer)
	t.Logf("%.1f MiB of the %.1f MiB layer crossed the wire in %d GETs", float64(moved)/(1<<20), float64(size)/(1<<20), counter.RequestsFor(layer))
	// One stream of the layer, and the starts of the whole-blob answers
	// that were closed at once (read from byte 0, or past it before the
	// daemon knew the host).
	if moved > size*3/2 {
		t.Errorf("%d bytes crossed the wire for a %d-byte layer, want about one layer", moved, size)
	}
	var warnings []string
	for _, line := range strings.Split(m.stderr.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "ignores Range") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], counter.Host()) {
		t.Errorf("warnings that %s ignores Range: %q, want one", counter.Host(), warnings)
	}
}
