package nodetest

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"testing"
)

// Image is a node.ReaderAt over bytes in memory or a file, with the
// io.ReaderAt contract (a negative offset is an error, n < len(p) only with
// io.EOF or another error), that counts what is read of it. It is safe for
// concurrent use.
type Image struct {
	r    io.ReaderAt
	size int64

	mu                 sync.Mutex
	reads, read, asked int64
}

// NewImage is an Image of b, which it does not copy.
func NewImage(b []byte) *Image {
	return &Image{r: bytes.NewReader(b), size: int64(len(b))}
}

// File is an Image of the file at path, closed when the test ends.
func File(t testing.TB, path string) *Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return &Image{r: f, size: fi.Size()}
}

// ReadAt reads p at off and counts the call, the bytes asked for and the
// bytes read.
func (m *Image) ReadAt(_ context.Context, p []byte, off int64) (int, error) {
	n, err := m.r.ReadAt(p, off)
	m.mu.Lock()
	m.reads++
	m.asked += int64(len(p))
	m.read += int64(n)
	m.mu.Unlock()
	return n, err
}

// Size is the length of the image.
func (m *Image) Size() int64 { return m.size }

// Reads is the number of ReadAt calls since the start or the last Reset.
func (m *Image) Reads() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads
}

// BytesRead is the number of bytes ReadAt returned since the start or the
// last Reset.
func (m *Image) BytesRead() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.read
}

// BytesAsked is the number of bytes ReadAt was asked for (the sum of
// len(p)) since the start or the last Reset: at the end of the image, more
// than BytesRead.
func (m *Image) BytesAsked() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asked
}

// Reset sets the counters to zero.
func (m *Image) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads, m.read, m.asked = 0, 0, 0
}
