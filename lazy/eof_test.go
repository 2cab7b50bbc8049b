package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// TestFetchErrorWrappingEOFIsNotEOF: a source error that wraps io.EOF (Go's
// HTTP client reports a connection closed early as `Get ...: EOF`) must
// reach the reader as an error that is not io.EOF itself, so that the FUSE
// layer answers EIO, never a short file.
func TestFetchErrorWrappingEOFIsNotEOF(t *testing.T) {
	data := fixture.RandomBytes(1, 8192)
	src := &memSource{data: data, fail: fmt.Errorf("read blob: Get \"http://registry/v2/...\": %w", io.EOF)}
	b := newTestFetcher(t, src, 4096).Blob(digest.FromBytes(data), int64(len(data)))
	n, err := b.ReadAt(context.Background(), make([]byte, 100), 10)
	if err == nil || n != 0 {
		t.Fatalf("n %d, err %v: want a failed read", n, err)
	}
	if err == io.EOF { //nolint:errorlint // identity is the point
		t.Fatal("a failed fetch came back as io.EOF itself")
	}
	if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "registry") {
		t.Fatalf("the read's error %q lost the source's error (which wraps io.EOF)", err)
	}
}
