package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/osimagefs/osimagefs/test/faulty"
	"github.com/osimagefs/osimagefs/test/fixture"
	"github.com/osimagefs/osimagefs/test/registrytest"
)

// logBuffer collects a Store's debug log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count is how many log lines contain s.
func (l *logBuffer) Count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// faultEnv is a real registry holding one blob, a faulty proxy in front of
// it, and a Store reading through the proxy.
type faultEnv struct {
	reg   *registrytest.Registry
	front *faulty.Proxy
	store *Store
	data  []byte
	desc  ocispec.Descriptor
	log   *logBuffer
}

const faultRepo = "os/faults"

func newFaultEnv(t *testing.T, size int, opts Options) *faultEnv {
	t.Helper()
	e := &faultEnv{reg: registrytest.Start(t), data: fixture.RandomBytes(7, size), log: &logBuffer{}}
	var err error
	e.desc, err = registrytest.PushBlobBytes(context.Background(), e.reg.Host(), faultRepo, e.data, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	e.front = faulty.New(t, e.reg.Host())
	e.store = e.open(t, e.front.Host(), opts)
	return e
}

// open opens a Store on host, which speaks plain HTTP (as the registry and
// the fronts of these tests do), whose debug log goes to e.log.
func (e *faultEnv) open(t *testing.T, host string, opts Options) *Store {
	t.Helper()
	opts.PlainHTTP = true
	opts.Logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(context.Background(), host+"/"+faultRepo+":any", opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readRange reads len(p) bytes of blob d at off through s: ReadParts with
// one part.
func readRange(ctx context.Context, s *Store, d digest.Digest, p []byte, off int64) error {
	return s.ReadParts(ctx, d, [][]byte{p}, off, func(int) {})
}

// read reads the n bytes at off through s with a deadline of timeout,
// checks the bytes on success (a mismatch fails the test and returns
// errWrongBytes), and returns the time taken. It may run on any goroutine.
func (e *faultEnv) read(t *testing.T, s *Store, off int64, n int, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := bytes.Repeat([]byte{0xEE}, n)
	start := time.Now()
	err := readRange(ctx, s, e.desc.Digest, p, off)
	took := time.Since(start)
	if err != nil {
		return took, err
	}
	if off+int64(n) > int64(len(e.data)) || !bytes.Equal(p, e.data[off:off+int64(n)]) {
		t.Errorf("read of %d bytes at %d returned bytes that differ from the blob", n, off)
		return took, errWrongBytes
	}
	return took, nil
}

// upToEnd is n, or fewer when the blob ends less than n bytes after off.
func (e *faultEnv) upToEnd(off int64, n int) int {
	return int(min(int64(n), int64(len(e.data))-off))
}

// errWrongBytes: a read returned bytes that are not the blob's.
var errWrongBytes = errors.New("WRONG BYTES")

// gets are the blob GETs the front saw, as "fault -> status" strings.
func gets(rs []faulty.Request) []string {
	var out []string
	for _, r := range rs {
		if r.IsBlobGet() {
			f := r.Fault
			if f == "" {
				f = "forwarded"
			}
			out = append(out, fmt.Sprintf("%s -> %d", f, r.Status))
		}
	}
	return out
}
