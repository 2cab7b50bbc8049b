package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// testChunk is a small chunk size for the unit tests.
const testChunk = 4096

// openTestDisk opens a Disk on dir and closes it at the end of the test.
func openTestDisk(t testing.TB, dir string, chunkSize, limit int64) *Disk {
	t.Helper()
	d, err := OpenDisk(dir, chunkSize, limit, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// testBlob is a blob cut into chunks of cs bytes (the last one shorter).
type testBlob struct {
	data   []byte
	digest digest.Digest
	cs     int
}

func newTestBlob(seed uint64, size, cs int) testBlob {
	data := fixture.RandomBytes(seed, size)
	return testBlob{data: data, digest: digest.FromBytes(data), cs: cs}
}

func (b testBlob) chunks() int64 { return int64((len(b.data) + b.cs - 1) / b.cs) }

func (b testBlob) chunk(i int64) []byte {
	lo := int(i) * b.cs
	return b.data[lo:min(len(b.data), lo+b.cs)]
}

func (b testBlob) key(i int64) Key { return Key{Digest: b.digest, Index: i} }

// addAll stores every chunk of b.
func addAll(t testing.TB, d *Disk, b testBlob) {
	t.Helper()
	for i := range b.chunks() {
		if err := d.Add(b.key(i), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// chunkFile is the absolute path of the chunk file of k.
func chunkFile(d *Disk, k Key) string { return filepath.Join(d.root, d.path(k)) }

// filesSize walks the cache directory and sums the sizes of all regular
// files but the lock file (which holds a pid, not chunks), tmp/ included.
func filesSize(t testing.TB, root string) (total int64, files int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if de.IsDir() || p == filepath.Join(root, "lock") {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		total += info.Size()
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, files
}

// mustRead reads chunk k (len(want) bytes from off) and compares.
func mustRead(t testing.TB, d *Disk, k Key, off int64, want []byte) {
	t.Helper()
	p := make([]byte, len(want))
	ok, err := d.ReadAt(k, p, off)
	if err != nil || !ok {
		t.Fatalf("ReadAt(%s, %d bytes at %d) = %v, %v; want a hit", k, len(p), off, ok, err)
	}
	if !bytes.Equal(p, want) {
		t.Fatalf("ReadAt(%s, %d bytes at %d): wrong bytes", k, len(p), off)
	}
}

// mustMiss checks that chunk k is not cached.
func mustMiss(t testing.TB, d *Disk, k Key) {
	t.Helper()
	ok, err := d.ReadAt(k, make([]byte, 1), 0)
	if ok || err != nil {
		t.Fatalf("ReadAt(%s) = %v, %v; want a miss", k, ok, err)
	}
	if d.Has(k) {
		t.Fatalf("%s is cached, want it gone", k)
	}
}

func TestDiskRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(1, 3*testChunk+100, testChunk) // the last chunk is 100 bytes
	mustMiss(t, d, b.key(0))
	addAll(t, d, b)
	if got, want := d.Used(), int64(len(b.data)); got != want {
		t.Fatalf("Used() = %d, want %d", got, want)
	}
	for i := range b.chunks() {
		if !d.Has(b.key(i)) {
			t.Fatalf("Has(%s) = false after Add", b.key(i))
		}
		c := b.chunk(i)
		mustRead(t, d, b.key(i), 0, c)             // whole chunk
		mustRead(t, d, b.key(i), 7, c[7:len(c)-3]) // a part of it
		mustRead(t, d, b.key(i), int64(len(c)-1), c[len(c)-1:])
		// The file holds exactly the chunk.
		raw, err := os.ReadFile(chunkFile(d, b.key(i)))
		if err != nil || !bytes.Equal(raw, c) {
			t.Fatalf("chunk file of %s: %d bytes (%v), want the %d bytes of the chunk", b.key(i), len(raw), err, len(c))
		}
	}
	// Reading past the end of a chunk is a miss (the file is shorter than
	// asked), not wrong bytes.
	if ok, _ := d.ReadAt(b.key(3), make([]byte, 200), 0); ok {
		t.Fatal("a 200-byte read of a 100-byte chunk was a hit")
	}
	// Same index of another blob, and an index beyond: misses.
	mustMiss(t, d, Key{Digest: digest.FromString("other"), Index: 0})
	mustMiss(t, d, b.key(4))
	// Adding a chunk again changes nothing.
	if err := d.Add(b.key(0), b.chunk(0)); err != nil {
		t.Fatal(err)
	}
	if got, files := filesSize(t, dir); got != d.Used() || files != 3 {
		t.Fatalf("files on disk: %d bytes in %d files; Used() = %d, want them equal and 3 files", got, files, d.Used())
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %d files after the writes, want none", len(tmp))
	}
}

func TestDiskPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(2, 5*testChunk+1, testChunk)
	addAll(t, d, b)
	used := d.Used()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d2 := openTestDisk(t, dir, testChunk, 1<<20)
	if d2.Used() != used {
		t.Fatalf("Used() after reopen = %d, want %d", d2.Used(), used)
	}
	for i := range b.chunks() {
		mustRead(t, d2, b.key(i), 0, b.chunk(i))
	}
	// Another chunk size is another namespace in the same directory: its
	// chunks are not served under this chunk size (their indexes mean other
	// bytes), but they do count against the limit.
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	d3 := openTestDisk(t, dir, 2*testChunk, 1<<20)
	mustMiss(t, d3, b.key(0))
	if d3.Used() != used {
		t.Fatalf("Used() with another chunk size = %d, want the %d bytes in the directory", d3.Used(), used)
	}
}

func TestDiskStaysWithinLimit(t *testing.T) {
	dir := t.TempDir()
	const limit = 4*testChunk + testChunk/2 // room for 4 chunks, not 5
	d := openTestDisk(t, dir, testChunk, limit)
	var blobs []testBlob
	for s := range uint64(5) {
		blobs = append(blobs, newTestBlob(10+s, 3*testChunk, testChunk))
	}
	var order []Key
	for _, b := range blobs {
		for i := range b.chunks() {
			if err := d.Add(b.key(i), b.chunk(i)); err != nil {
				t.Fatal(err)
			}
			order = append(order, b.key(i))
			onDisk, _ := filesSize(t, dir)
			if d.Used() > limit || onDisk > limit {
				t.Fatalf("after %d chunks: Used() = %d, files on disk %d bytes; limit %d", len(order), d.Used(), onDisk, limit)
			}
			if onDisk != d.Used() {
				t.Fatalf("after %d chunks: files on disk %d bytes, Used() = %d", len(order), onDisk, d.Used())
			}
		}
	}
	// Exactly the 4 most recently added remain.
	for j, k := range order {
		if kept := j >= len(order)-4; kept != d.Has(k) {
			t.Fatalf("%s (added %d of %d): cached %v, want %v", k, j+1, len(order), d.Has(k), kept)
		}
	}
	// Reopening with a smaller limit evicts down to it.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := openTestDisk(t, dir, testChunk, 2*testChunk)
	onDisk, files := filesSize(t, dir)
	if d2.Used() != 2*testChunk || onDisk != 2*testChunk || files != 2 {
		t.Fatalf("reopened with a 2-chunk limit: Used() = %d, %d bytes in %d files on disk", d2.Used(), onDisk, files)
	}
	if !d2.Has(order[len(order)-1]) || !d2.Has(order[len(order)-2]) {
		t.Fatal("reopening with a smaller limit did not keep the 2 most recent chunks")
	}
}

// TestDiskCountsChunksBeingWritten: the room an Add makes counts the
// chunks other Adds are writing at the same time, so concurrent writers
// do not each fill the limit on their own.
func TestDiskCountsChunksBeingWritten(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 4*testChunk)
	b := newTestBlob(9, 6*testChunk, testChunk)
	addAll(t, d, testBlob{data: b.data[:4*testChunk], digest: b.digest, cs: testChunk})
	// Two chunks are being written by other goroutines (as Add records
	// them while it writes).
	d.mu.Lock()
	d.pending += 2 * testChunk
	d.mu.Unlock()
	if err := d.Add(b.key(4), b.chunk(4)); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := filesSize(t, dir)
	if onDisk+2*testChunk > 4*testChunk {
		t.Fatalf("%d bytes on disk beside 2 chunks being written, over the %d-byte limit", onDisk, 4*testChunk)
	}
	for i, want := range []bool{false, false, false, true, true} {
		if d.Has(b.key(int64(i))) != want {
			t.Fatalf("chunk %d cached %v, want %v", i, !want, want)
		}
	}
	d.mu.Lock()
	pending := d.pending - 2*testChunk
	d.pending = 0
	d.mu.Unlock()
	if pending != 0 {
		t.Fatalf("Add left %d bytes recorded as being written", pending)
	}
}

func TestDiskEvictsLeastRecentlyUsed(t *testing.T) {
	d := openTestDisk(t, t.TempDir(), testChunk, 4*testChunk)
	b := newTestBlob(3, 8*testChunk, testChunk)
	for i := range int64(4) {
		if err := d.Add(b.key(i), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustRead(t, d, b.key(0), 0, b.chunk(0)) // 0 becomes the most recent
	if err := d.Add(b.key(4), b.chunk(4)); err != nil {
		t.Fatal(err)
	}
	if !d.Has(b.key(0)) {
		t.Fatal("chunk 0, just read, was evicted")
	}
	if d.Has(b.key(1)) {
		t.Fatal("chunk 1, the least recently used, was kept")
	}
	mustRead(t, d, b.key(2), 0, b.chunk(2)) // order now: 3 0 4 2
	for i := int64(5); i < 7; i++ {
		if err := d.Add(b.key(i), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []bool{false, false, true, false, true, true, true} {
		if d.Has(b.key(int64(i))) != want {
			t.Fatalf("chunk %d cached %v, want %v", i, !want, want)
		}
	}
}

// setMtime sets the modification time of chunk k's file.
func setMtime(t *testing.T, d *Disk, k Key, at time.Time) {
	t.Helper()
	if err := os.Chtimes(chunkFile(d, k), at, at); err != nil {
		t.Fatal(err)
	}
}

func mtime(t *testing.T, d *Disk, k Key) time.Time {
	t.Helper()
	st, err := os.Stat(chunkFile(d, k))
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

// TestDiskRecencySurvivesReopen: the LRU order is rebuilt from file
// modification times, and a read refreshes a chunk's time (at most once
// per touchInterval), so what was read recently survives a restart.
func TestDiskRecencySurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 4*testChunk)
	b := newTestBlob(4, 8*testChunk, testChunk)
	addAll(t, d, testBlob{data: b.data[:4*testChunk], digest: b.digest, cs: testChunk})
	// Written long ago, chunk 3 first, chunk 0 last.
	old := time.Now().Add(-10 * time.Hour)
	for i := range int64(4) {
		setMtime(t, d, b.key(i), old.Add(time.Duration(3-i)*time.Minute))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened, the order comes from the times: 3 is the oldest.
	d = openTestDisk(t, dir, testChunk, 4*testChunk)
	if err := d.Add(b.key(4), b.chunk(4)); err != nil {
		t.Fatal(err)
	}
	if d.Has(b.key(3)) || !d.Has(b.key(2)) {
		t.Fatal("after reopening, the chunk with the oldest file time was not the one evicted")
	}
	// Now 2 is the oldest; read it, so that it is the most recent.
	mustRead(t, d, b.key(2), 0, b.chunk(2))
	if at := mtime(t, d, b.key(2)); time.Since(at) > time.Minute {
		t.Fatalf("a read left chunk 2's file time at %s, want it refreshed", at)
	}
	// A second read within touchInterval does not touch the file again:
	// reads cost no metadata write each.
	setMtime(t, d, b.key(2), old.Add(time.Hour))
	mustRead(t, d, b.key(2), 0, b.chunk(2))
	if at := mtime(t, d, b.key(2)); !at.Equal(old.Add(time.Hour)) {
		t.Fatalf("a second read within %s touched the file again (time %s)", touchInterval, at)
	}
	setMtime(t, d, b.key(2), time.Now())
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened again: 2 (read) survives two more chunks; 1 and 0 go.
	d = openTestDisk(t, dir, testChunk, 4*testChunk)
	for i := int64(5); i < 7; i++ {
		if err := d.Add(b.key(i), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []bool{false, false, true, false, true, true, true} {
		if d.Has(b.key(int64(i))) != want {
			t.Fatalf("chunk %d cached %v, want %v", i, !want, want)
		}
	}
}

// TestDiskReadRefreshesFileTime proves that the file time a restart
// orders by is refreshed by reads, without test-set times: a chunk read
// after others were written ends up newest on disk.
func TestDiskReadRefreshesFileTime(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 3*testChunk)
	b := newTestBlob(5, 4*testChunk, testChunk)
	if err := d.Add(b.key(0), b.chunk(0)); err != nil {
		t.Fatal(err)
	}
	// Pretend chunk 0 was written before the touch interval.
	setMtime(t, d, b.key(0), time.Now().Add(-2*touchInterval))
	d.mu.Lock()
	if e, ok := d.lru.Peek(d.path(b.key(0))); ok {
		e.touched = time.Now().Add(-2 * touchInterval).UnixNano()
	}
	d.mu.Unlock()
	for i := int64(1); i < 3; i++ {
		if err := d.Add(b.key(i), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustRead(t, d, b.key(0), 0, b.chunk(0))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTestDisk(t, dir, testChunk, 3*testChunk)
	if err := d.Add(b.key(3), b.chunk(3)); err != nil {
		t.Fatal(err)
	}
	if !d.Has(b.key(0)) || d.Has(b.key(1)) {
		t.Fatalf("after a restart, read chunk 0 cached %v, chunk 1 (written before the read) cached %v; want true, false", d.Has(b.key(0)), d.Has(b.key(1)))
	}
}

func TestDiskRemovesTmpGarbageAtOpen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(6, 2*testChunk, testChunk)
	addAll(t, d, b)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// What a process killed in the middle of writes leaves behind.
	for i := range 3 {
		p := filepath.Join(dir, "tmp", fmt.Sprintf("chunk-%d", i))
		if err := os.WriteFile(p, make([]byte, 1000*(i+1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d = openTestDisk(t, dir, testChunk, 1<<20)
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("tmp/ holds %d files after open, want none", len(ents))
	}
	if d.Used() != int64(len(b.data)) {
		t.Fatalf("Used() = %d, want %d: tmp/ files must not count", d.Used(), len(b.data))
	}
	for i := range b.chunks() {
		mustRead(t, d, b.key(i), 0, b.chunk(i))
	}
}

func TestDiskTruncatedChunkIsMissing(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(7, 3*testChunk, testChunk)
	addAll(t, d, b)

	// Truncated while open.
	if err := os.Truncate(chunkFile(d, b.key(1)), testChunk/2); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.ReadAt(b.key(1), make([]byte, testChunk), 0); ok || err != nil {
		t.Fatalf("ReadAt of a truncated chunk = %v, %v; want a miss", ok, err)
	}
	mustMiss(t, d, b.key(1))
	if _, err := os.Stat(chunkFile(d, b.key(1))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the truncated chunk file is still there: %v", err)
	}
	if got, want := d.Used(), int64(2*testChunk); got != want {
		t.Fatalf("Used() = %d, want %d", got, want)
	}
	if err := d.Add(b.key(1), b.chunk(1)); err != nil { // fetched again
		t.Fatal(err)
	}
	mustRead(t, d, b.key(1), 0, b.chunk(1))

	// Truncated while closed (say, by a full disk): found at reopen, missing
	// on the first read that needs the lost bytes.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(chunkFile(d, b.key(2)), 0); err != nil {
		t.Fatal(err)
	}
	d = openTestDisk(t, dir, testChunk, 1<<20)
	if ok, err := d.ReadAt(b.key(2), make([]byte, testChunk), 0); ok || err != nil {
		t.Fatalf("ReadAt of a chunk truncated while closed = %v, %v; want a miss", ok, err)
	}
	mustMiss(t, d, b.key(2))
	if onDisk, _ := filesSize(t, dir); onDisk != d.Used() || d.Used() != 2*testChunk {
		t.Fatalf("Used() = %d, files on disk %d bytes; want both %d", d.Used(), onDisk, 2*testChunk)
	}
}

func TestDiskChunkFileRemovedBehindItsBack(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(8, 2*testChunk, testChunk)
	addAll(t, d, b)
	if err := os.Remove(chunkFile(d, b.key(0))); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, d, b.key(0))
	if d.Used() != testChunk {
		t.Fatalf("Used() = %d, want %d", d.Used(), testChunk)
	}
}

// TestDiskStaleFindingKeepsNewerChunk: a reader that found a chunk's file
// missing or short drops the index entry it read, never one written after
// it looked (which would leave a file on disk the index does not count,
// and the bound broken).
func TestDiskStaleFindingKeepsNewerChunk(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(12, testChunk, testChunk)
	rel := d.path(b.key(0))
	if err := d.Add(b.key(0), b.chunk(0)); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	e, _ := d.lru.Peek(rel)
	stale := e.gen
	d.mu.Unlock()
	// Evicted and written again meanwhile.
	if !d.forget(rel, 0) {
		t.Fatal("forget of an indexed chunk did nothing")
	}
	if err := d.Add(b.key(0), b.chunk(0)); err != nil {
		t.Fatal(err)
	}
	d.remove(rel, stale) // what a reader who opened the old file would do
	mustRead(t, d, b.key(0), 0, b.chunk(0))
	if onDisk, _ := filesSize(t, dir); onDisk != d.Used() || d.Used() != testChunk {
		t.Fatalf("Used() = %d, %d bytes on disk; want both %d", d.Used(), onDisk, testChunk)
	}
}

func TestDiskBusySameProcess(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	_, err := OpenDisk(dir, testChunk, 1<<20, nil)
	if !errors.Is(err, ErrCacheBusy) {
		t.Fatalf("second OpenDisk: %v, want ErrCacheBusy", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("message %q does not name the directory %s and pid %d", msg, dir, os.Getpid())
	}
	t.Logf("second OpenDisk: %v", err)
	// The failed attempt did not break the holder's lock or pid.
	if _, err := OpenDisk(dir, testChunk, 1<<20, nil); !errors.Is(err, ErrCacheBusy) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("third OpenDisk: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := OpenDisk(dir, testChunk, 1<<20, nil)
	if err != nil {
		t.Fatalf("OpenDisk after the holder closed: %v", err)
	}
	d2.Close()
}

// holdLockEnv makes the test binary hold the lock on its value (TestMain).
const holdLockEnv = "OSIMAGEFS_TEST_HOLD_CACHE_LOCK"

// TestMain runs this test binary as the lock holder of
// TestDiskBusyOtherProcess when holdLockEnv is set, and as the tests
// otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		holdLock(dir)
		return
	}
	os.Exit(m.Run())
}

// holdLock opens the cache at dir, says "locked" and holds the lock until
// stdin closes or the process is killed.
func holdLock(dir string) {
	d, err := OpenDisk(dir, testChunk, 1<<20, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	d.Close()
	os.Exit(0)
}

func TestDiskBusyOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper process: %q, %v", line, err)
	}

	_, err = OpenDisk(dir, testChunk, 1<<20, nil)
	if !errors.Is(err, ErrCacheBusy) {
		t.Fatalf("OpenDisk while another process holds the cache: %v, want ErrCacheBusy", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("message %q does not name the directory %s and the holder's pid %d", msg, dir, cmd.Process.Pid)
	}
	t.Logf("OpenDisk while pid %d holds it: %v", cmd.Process.Pid, err)

	// The lock dies with its process, even on SIGKILL.
	_ = stdin // kept open: the helper would exit cleanly if it closed
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	d, err := OpenDisk(dir, testChunk, 1<<20, nil)
	if err != nil {
		t.Fatalf("OpenDisk after the holder was killed: %v", err)
	}
	d.Close()
}

func TestOpenDiskRejectsBadSizes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		chunk, limit int64
	}{{"zero chunk", 0, 1 << 20}, {"negative chunk", -1, 1 << 20}, {"limit below a chunk", 1 << 20, 1<<20 - 1}} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := OpenDisk(t.TempDir(), tc.chunk, tc.limit, nil); err == nil {
				d.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestDiskVerify(t *testing.T) {
	ctx := context.Background()
	t.Run("good blob is marked verified, across reopen", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 1<<20)
		b := newTestBlob(20, 5*testChunk+17, testChunk)
		for i := range b.chunks() {
			if d.NeedsVerify(b.digest, b.chunks()) {
				t.Fatalf("NeedsVerify true with %d of %d chunks", i, b.chunks())
			}
			if err := d.Add(b.key(i), b.chunk(i)); err != nil {
				t.Fatal(err)
			}
		}
		if !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("NeedsVerify false for a complete, unverified blob")
		}
		if err := d.Verify(ctx, b.digest, b.chunks()); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if !d.Verified(b.digest) || d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("a blob that passed is not recorded as verified")
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d = openTestDisk(t, dir, testChunk, 1<<20)
		if !d.Verified(b.digest) || d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("verified is lost across reopen")
		}
		for i := range b.chunks() {
			mustRead(t, d, b.key(i), 0, b.chunk(i))
		}
	})

	t.Run("corrupted blob fails and its chunks are removed", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 1<<20)
		b := newTestBlob(21, 4*testChunk+1, testChunk)
		bad := bytes.Clone(b.chunk(2))
		bad[100] ^= 0x01
		other := newTestBlob(22, 2*testChunk, testChunk) // an unrelated blob stays
		addAll(t, d, other)
		for i := range b.chunks() {
			c := b.chunk(i)
			if i == 2 {
				c = bad
			}
			if err := d.Add(b.key(i), c); err != nil {
				t.Fatal(err)
			}
		}
		err := d.Verify(ctx, b.digest, b.chunks())
		var mm *DigestMismatchError
		if !errors.As(err, &mm) {
			t.Fatalf("Verify of a corrupted blob: %v, want *DigestMismatchError", err)
		}
		wrong := bytes.Clone(b.data)
		wrong[2*testChunk+100] ^= 0x01
		if mm.Digest != b.digest || mm.Got != digest.FromBytes(wrong) {
			t.Fatalf("mismatch error names %s (got %s), want %s (got %s)", mm.Digest, mm.Got, b.digest, digest.FromBytes(wrong))
		}
		if !strings.Contains(err.Error(), b.digest.String()) {
			t.Fatalf("message %q does not name the blob", err)
		}
		if d.Verified(b.digest) {
			t.Fatal("a corrupted blob is recorded as verified")
		}
		for i := range b.chunks() {
			mustMiss(t, d, b.key(i))
			if _, err := os.Stat(chunkFile(d, b.key(i))); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("chunk file %d is still there: %v", i, err)
			}
		}
		if d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("NeedsVerify true after the chunks were dropped")
		}
		if d.Used() != int64(len(other.data)) {
			t.Fatalf("Used() = %d, want %d (the other blob)", d.Used(), len(other.data))
		}
		for i := range other.chunks() {
			mustRead(t, d, other.key(i), 0, other.chunk(i))
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d = openTestDisk(t, dir, testChunk, 1<<20)
		if d.Verified(b.digest) || d.Has(b.key(0)) {
			t.Fatal("the corrupted blob came back after reopen")
		}
	})

	t.Run("a verified marker without chunks is dropped at open", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 1<<20)
		b := newTestBlob(26, 2*testChunk, testChunk)
		addAll(t, d, b)
		if err := d.Verify(ctx, b.digest, b.chunks()); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		for i := range b.chunks() { // removed by hand, behind the cache's back
			if err := os.Remove(chunkFile(d, b.key(i))); err != nil {
				t.Fatal(err)
			}
		}
		d = openTestDisk(t, dir, testChunk, 1<<20)
		if d.Verified(b.digest) {
			t.Fatal("a blob with no chunks left is verified")
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(chunkFile(d, b.key(0))), "verified")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stale verified marker left: %v", err)
		}
		addAll(t, d, b)
		if !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("fetched again, the blob is not to be verified again")
		}
	})

	t.Run("missing chunk is ErrIncomplete", func(t *testing.T) {
		d := openTestDisk(t, t.TempDir(), testChunk, 1<<20)
		b := newTestBlob(23, 3*testChunk, testChunk)
		if err := d.Add(b.key(0), b.chunk(0)); err != nil {
			t.Fatal(err)
		}
		if err := d.Add(b.key(2), b.chunk(2)); err != nil {
			t.Fatal(err)
		}
		err := d.Verify(ctx, b.digest, b.chunks())
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Verify with chunk 1 missing: %v, want ErrIncomplete", err)
		}
		if d.Verified(b.digest) {
			t.Fatal("an incomplete blob is recorded as verified")
		}
		// Nothing was dropped: the chunks are still good.
		mustRead(t, d, b.key(0), 0, b.chunk(0))
		mustRead(t, d, b.key(2), 0, b.chunk(2))
	})

	t.Run("evicting a chunk of a verified blob unverifies it, across reopen", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 4*testChunk)
		b := newTestBlob(24, 3*testChunk, testChunk)
		addAll(t, d, b)
		if err := d.Verify(ctx, b.digest, b.chunks()); err != nil {
			t.Fatal(err)
		}
		x := digest.FromString("x")
		for i := range int64(2) { // the second evicts chunk 0 of b
			if err := d.Add(Key{Digest: x, Index: i}, make([]byte, testChunk)); err != nil {
				t.Fatal(err)
			}
		}
		if d.Verified(b.digest) || d.Has(b.key(0)) {
			t.Fatal("the blob is still verified after its chunk 0 was evicted")
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d = openTestDisk(t, dir, testChunk, 4*testChunk)
		if d.Verified(b.digest) {
			t.Fatal("the verified marker survived the eviction")
		}
		mustRead(t, d, b.key(1), 0, b.chunk(1)) // so that chunk 0 comes back
		mustRead(t, d, b.key(2), 0, b.chunk(2)) // in place of x's chunk 0
		if err := d.Add(b.key(0), b.chunk(0)); err != nil {
			t.Fatal(err)
		}
		if !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("a complete blob whose chunk was fetched again does not need verifying")
		}
	})

	t.Run("a chunk dropped as truncated unverifies its blob", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 1<<20)
		b := newTestBlob(25, 3*testChunk, testChunk)
		addAll(t, d, b)
		if err := d.Verify(ctx, b.digest, b.chunks()); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(chunkFile(d, b.key(1)), 10); err != nil {
			t.Fatal(err)
		}
		if ok, _ := d.ReadAt(b.key(1), make([]byte, testChunk), 0); ok {
			t.Fatal("hit on a truncated chunk")
		}
		if d.Verified(b.digest) {
			t.Fatal("the blob is still verified after its chunk 1 was dropped")
		}
		if err := d.Add(b.key(1), b.chunk(1)); err != nil {
			t.Fatal(err)
		}
		if !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("complete again but not to be verified again")
		}
	})
}

// TestDiskConcurrent hammers one Disk from many goroutines (run it with
// -race): the accounting stays exact and the bound holds.
func TestDiskConcurrent(t *testing.T) {
	dir := t.TempDir()
	const limit = 16 * testChunk
	d := openTestDisk(t, dir, testChunk, limit)
	blobs := make([]testBlob, 4)
	for i := range blobs {
		blobs[i] = newTestBlob(uint64(30+i), 12*testChunk, testChunk)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			p := make([]byte, testChunk)
			for range 400 {
				b := blobs[r.IntN(len(blobs))]
				i := r.Int64N(b.chunks())
				if r.IntN(3) == 0 {
					if err := d.Add(b.key(i), b.chunk(i)); err != nil {
						errs <- err
						return
					}
					continue
				}
				ok, err := d.ReadAt(b.key(i), p, 0)
				if err != nil {
					errs <- err
					return
				}
				if ok && !bytes.Equal(p, b.chunk(i)) {
					errs <- fmt.Errorf("%s: wrong bytes", b.key(i))
					return
				}
				if used := d.Used(); used > limit {
					errs <- fmt.Errorf("Used() = %d > limit %d", used, limit)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d.mu.Lock()
	pending := d.pending
	d.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d bytes still recorded as being written after all Adds returned", pending)
	}
	onDisk, files := filesSize(t, dir)
	if onDisk != d.Used() || d.Used() > limit {
		t.Fatalf("Used() = %d, files on disk %d bytes in %d files; limit %d", d.Used(), onDisk, files, limit)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTestDisk(t, dir, testChunk, limit)
	if d.Used() != onDisk {
		t.Fatalf("reopened: Used() = %d, want %d", d.Used(), onDisk)
	}
}

func BenchmarkDiskReadAtHit(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			d := openTestDisk(b, b.TempDir(), 1<<20, 64<<20)
			dg := digest.FromString("blob")
			for i := range int64(16) {
				if err := d.Add(Key{dg, i}, fixture.RandomBytes(uint64(i), 1<<20)); err != nil {
					b.Fatal(err)
				}
			}
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if ok, err := d.ReadAt(Key{dg, int64(i % 16)}, p, int64(i%4)*int64(size)%(1<<20)); !ok || err != nil {
					b.Fatal("miss", err)
				}
			}
		})
	}
}

// BenchmarkDiskMissThenAdd is the miss path: a look-up that misses, then
// the chunk written (tmp file, rename) with eviction of the oldest.
func BenchmarkDiskMissThenAdd(b *testing.B) {
	d := openTestDisk(b, b.TempDir(), 1<<20, 16<<20)
	dg := digest.FromString("blob")
	c := fixture.RandomBytes(1, 1<<20)
	p := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := Key{dg, int64(i)}
		if ok, _ := d.ReadAt(k, p, 0); ok {
			b.Fatal("hit")
		}
		if err := d.Add(k, c); err != nil {
			b.Fatal(err)
		}
	}
}
