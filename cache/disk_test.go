package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/osimagefs/osimagefs/integrity"
	"github.com/osimagefs/osimagefs/test/fixture"
)

// testChunk is a small chunk size for the unit tests.
const testChunk = 4096

// openTestDisk opens a Disk on dir and closes it at the end of the test.
// Two Disks on one directory behave as two processes would: each has its
// own open files, so their locks conflict as between processes.
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

func (b testBlob) size() int64   { return int64(len(b.data)) }
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
		if err := d.Add(b.key(i), b.size(), b.chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
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

// allocated is the bytes of disk the blob data files under root take.
func allocated(t testing.TB, root string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(filepath.Join(root, "v2"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Name() != "data" {
			return nil
		}
		info, err := de.Info()
		if err == nil {
			total += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestDiskRoundTrip(t *testing.T) {
	d := openTestDisk(t, t.TempDir(), testChunk, 1<<20)
	b := newTestBlob(1, 3*testChunk+100, testChunk)
	mustMiss(t, d, b.key(0))
	addAll(t, d, b)
	for i := range b.chunks() {
		mustRead(t, d, b.key(i), 0, b.chunk(i))
	}
	mustRead(t, d, b.key(1), 10, b.chunk(1)[10:50])
	mustRead(t, d, b.key(3), 0, b.chunk(3)) // the short last chunk
	if got, want := d.Used(), b.size(); got != want {
		t.Errorf("Used = %d, want %d", got, want)
	}
	if got := d.CachedBytes(b.digest); got != b.size() {
		t.Errorf("CachedBytes = %d, want %d", got, b.size())
	}
	// Reads beyond a chunk, and a chunk of the wrong length, are refused.
	if ok, _ := d.ReadAt(b.key(3), make([]byte, 101), 0); ok {
		t.Error("a read past the end of the last chunk hit")
	}
	if err := d.Add(b.key(0), b.size(), b.chunk(0)[:10]); err == nil {
		t.Error("Add took a chunk of the wrong length")
	}
	if err := d.Add(b.key(9), b.size(), b.chunk(0)); err == nil {
		t.Error("Add took a chunk beyond the blob")
	}
}

func TestDiskPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	b := newTestBlob(2, 5*testChunk, testChunk)
	d := openTestDisk(t, dir, testChunk, 1<<20)
	addAll(t, d, b)
	d.Close()
	d2 := openTestDisk(t, dir, testChunk, 1<<20)
	for i := range b.chunks() {
		mustRead(t, d2, b.key(i), 0, b.chunk(i))
	}
	if got := d2.Used(); got != b.size() {
		t.Errorf("Used after reopen = %d, want %d", got, b.size())
	}
}

// TestDiskShared: what one process adds, another reads; a chunk one holds
// is Busy to the other until released, and a dead holder's lock is gone.
func TestDiskShared(t *testing.T) {
	dir := t.TempDir()
	a := openTestDisk(t, dir, testChunk, 1<<20)
	c := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(3, 4*testChunk, testChunk)
	if err := a.Add(b.key(0), b.size(), b.chunk(0)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, c, b.key(0), 0, b.chunk(0))
	claim := func(d *Disk, i int64) ClaimResult {
		t.Helper()
		r, err := d.Claim(b.key(i), b.size())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := claim(c, 0); r != Present {
		t.Errorf("Claim of a present chunk = %v, want Present", r)
	}
	if r := claim(a, 1); r != Claimed {
		t.Fatalf("Claim = %v, want Claimed", r)
	}
	if r := claim(c, 1); r != Busy {
		t.Errorf("Claim of a chunk another process holds = %v, want Busy", r)
	}
	if r := claim(a, 1); r != Busy {
		t.Errorf("second Claim in the same process = %v, want Busy", r)
	}
	// Add without a claim leaves the chunk to its holder.
	if err := c.Add(b.key(1), b.size(), b.chunk(1)); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, b.key(1))
	// Nor does an Add in the holder's own process: only the claim's
	// owner fills it.
	if err := a.Add(b.key(1), b.size(), b.chunk(1)); err != nil {
		t.Fatal(err)
	}
	mustMiss(t, c, b.key(1))
	if err := a.Fill(b.key(1), b.size(), b.chunk(1)); err != nil {
		t.Fatal(err)
	}
	mustRead(t, c, b.key(1), 0, b.chunk(1))
	if err := c.Fill(b.key(3), b.size(), b.chunk(3)); err == nil {
		t.Error("Fill without a claim succeeded")
	}
	mustMiss(t, c, b.key(3))
	if r := claim(a, 2); r != Claimed {
		t.Fatalf("Claim = %v, want Claimed", r)
	}
	a.Release(b.key(2))
	if r := claim(c, 2); r != Claimed {
		t.Errorf("Claim after the holder released = %v, want Claimed", r)
	}
	// Closing (as dying does) drops every lock.
	c.Close()
	if r := claim(a, 2); r != Claimed {
		t.Errorf("Claim after the holder closed = %v, want Claimed", r)
	}
}

// TestDiskBoundAcrossProcesses: four Disks on one directory write three
// times the limit between them, concurrently. The shared count and the
// disk blocks really taken stay within the limit plus one chunk each.
func TestDiskBoundAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	const limit = 64 * testChunk
	const procs = 4
	var wg sync.WaitGroup
	disks := make([]*Disk, procs)
	for p := range disks {
		disks[p] = openTestDisk(t, dir, testChunk, limit)
	}
	var mu sync.Mutex
	var peak, peakBlocks int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Under the eviction lock no chunk moves from one blob to
			// another while the walk counts them, so the sum is not
			// inflated by a chunk counted in both.
			lf, err := os.Open(filepath.Join(dir, "evict.lock"))
			if err != nil {
				t.Error(err)
				return
			}
			_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
			u, a := disks[0].Used(), allocated(t, dir)
			lf.Close()
			mu.Lock()
			peak, peakBlocks = max(peak, u), max(peakBlocks, a)
			mu.Unlock()
		}
	}()
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				b := newTestBlob(uint64(100+p*10+j), 16*testChunk, testChunk)
				addAll(t, disks[p], b)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if bound := int64(limit + procs*testChunk); peak > bound || peakBlocks > bound {
		t.Errorf("peak %d bytes counted, %d allocated; want both at most %d (limit %d + one chunk per process)", peak, peakBlocks, bound, limit)
	}
	if got := allocated(t, dir); got > limit {
		t.Errorf("%d bytes allocated after the writes, limit %d", got, limit)
	}
	t.Logf("peak %d counted, %d allocated, limit %d, %d written", peak, peakBlocks, limit, 3*limit)
}

// TestDiskEvictsLeastRecentlyUsed across processes: a chunk read lately
// by one process outlives older ones when another needs room.
func TestDiskEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	const limit = 8 * testChunk
	a := openTestDisk(t, dir, testChunk, limit)
	c := openTestDisk(t, dir, testChunk, limit)
	old := newTestBlob(4, 8*testChunk, testChunk)
	addAll(t, a, old)
	time.Sleep(2 * stampEvery)
	mustRead(t, c, old.key(0), 0, old.chunk(0)) // recently used, by the other process
	fresh := newTestBlob(5, 2*testChunk, testChunk)
	addAll(t, a, fresh)
	mustRead(t, a, old.key(0), 0, old.chunk(0))
	mustMiss(t, a, old.key(1))
	for i := range fresh.chunks() {
		mustRead(t, c, fresh.key(i), 0, fresh.chunk(i))
	}
	if u := a.Used(); u > limit {
		t.Errorf("Used %d over the limit %d", u, limit)
	}
}

// TestDiskEvictWhileReading: one process reads chunks over and over while
// another keeps evicting and rewriting them. A read that hits always has
// the right bytes; one that raced with an eviction reports a miss.
func TestDiskEvictWhileReading(t *testing.T) {
	dir := t.TempDir()
	const limit = 4 * testChunk
	r := openTestDisk(t, dir, testChunk, limit)
	w := openTestDisk(t, dir, testChunk, limit)
	blobs := []testBlob{newTestBlob(6, 4*testChunk, testChunk), newTestBlob(7, 4*testChunk, testChunk)}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			addAll(t, w, blobs[n%2]) // evicts the other blob
		}
	}()
	hits, misses := 0, 0
	p := make([]byte, testChunk)
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		for _, b := range blobs {
			for i := range b.chunks() {
				ok, err := r.ReadAt(b.key(i), p, 0)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					misses++
					continue
				}
				hits++
				if !bytes.Equal(p, b.chunk(i)) {
					t.Fatalf("a hit on %s returned wrong bytes", b.key(i))
				}
			}
		}
	}
	close(stop)
	<-done
	t.Logf("%d hits, %d misses", hits, misses)
	if hits == 0 || misses == 0 {
		t.Errorf("%d hits and %d misses: the reads did not race with evictions", hits, misses)
	}
}

const writerEnv = "OSIMAGEFS_TEST_CACHE_WRITER"

// TestMain runs this test binary as the writer of TestDiskKilledWriter
// when writerEnv is set, and as the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(writerEnv); dir != "" {
		writeForever(dir)
		return
	}
	os.Exit(m.Run())
}

// writeForever adds the chunks of killBlobs to the cache at dir, round
// and round (a small limit keeps it evicting too), until killed.
func writeForever(dir string) {
	d, err := OpenDisk(dir, testChunk, killLimit, nil)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("writing")
	for {
		for _, b := range killBlobs() {
			for i := range b.chunks() {
				if err := d.Add(b.key(i), b.size(), b.chunk(i)); err != nil {
					fmt.Println("error:", err)
					os.Exit(1)
				}
			}
		}
	}
}

const killLimit = 48 * testChunk

func killBlobs() []testBlob {
	return []testBlob{newTestBlob(8, 32*testChunk+5, testChunk), newTestBlob(9, 32*testChunk, testChunk)}
}

// TestDiskKilledWriter kills a writing process with SIGKILL at many
// moments while this one reads. No chunk is ever partly there: every
// chunk present has exactly its bytes, and no lock of the dead process
// blocks a claim.
func TestDiskKilledWriter(t *testing.T) {
	dir := t.TempDir()
	blobs := killBlobs()
	reader := openTestDisk(t, dir, testChunk, killLimit)
	check := func(when string) {
		t.Helper()
		p := make([]byte, testChunk)
		for _, b := range blobs {
			for i := range b.chunks() {
				q := p[:len(b.chunk(i))]
				if ok, err := reader.ReadAt(b.key(i), q, 0); err != nil {
					t.Fatal(err)
				} else if ok && !bytes.Equal(q, b.chunk(i)) {
					t.Fatalf("%s: %s is present with wrong bytes", when, b.key(i))
				}
			}
		}
	}
	for round := range 8 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), writerEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "writing\n" {
			_ = cmd.Process.Kill()
			t.Fatalf("writer: %q, %v", line, err)
		}
		for end := time.Now().Add(time.Duration(20+round*15) * time.Millisecond); time.Now().Before(end); {
			check("while writing")
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		check("after the kill")
		for _, b := range blobs {
			for i := range b.chunks() {
				r, err := reader.Claim(b.key(i), b.size())
				if err != nil || r == Busy {
					t.Fatalf("round %d: claim of %s after the writer died = %v, %v", round, b.key(i), r, err)
				}
				if r == Claimed {
					reader.Release(b.key(i))
				}
			}
		}
	}
	if got := allocated(t, dir); got > killLimit+2*testChunk {
		t.Errorf("%d bytes allocated, limit %d", got, killLimit)
	}
	// A reopen recounts: the shared count is exact again.
	d := openTestDisk(t, dir, testChunk, killLimit)
	var want int64
	for _, b := range blobs {
		want += d.CachedBytes(b.digest)
	}
	if got := d.Used(); got != want {
		t.Errorf("Used after reopen = %d, chunks present %d", got, want)
	}
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

// TestDiskSmallerLimitAtOpen: a process opening with a smaller limit
// brings the whole cache under it.
func TestDiskSmallerLimitAtOpen(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 64*testChunk)
	addAll(t, d, newTestBlob(10, 32*testChunk, testChunk))
	d2 := openTestDisk(t, dir, testChunk, 8*testChunk)
	if u, a := d2.Used(), allocated(t, dir); u > 8*testChunk || a > 8*testChunk {
		t.Errorf("after opening with a limit of %d: %d counted, %d allocated", 8*testChunk, u, a)
	}
}

// TestDiskBadIndex: an index this version did not write is no hit, no
// panic, and is replaced.
func TestDiskBadIndex(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 1<<20)
	b := newTestBlob(11, 3*testChunk, testChunk)
	addAll(t, d, b)
	d.Close()
	index := filepath.Join(dir, "v2", strconv.Itoa(testChunk), "sha256", b.digest.Encoded(), "index")
	for _, tc := range []struct {
		name string
		mess func() error
	}{
		{"truncated", func() error { return os.Truncate(index, 70) }},
		{"wrong magic", func() error { return os.WriteFile(index, bytes.Repeat([]byte{0xff}, 64+16*3), 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.mess(); err != nil {
				t.Fatal(err)
			}
			d := openTestDisk(t, dir, testChunk, 1<<20)
			mustMiss(t, d, b.key(0))
			addAll(t, d, b)
			mustRead(t, d, b.key(2), 0, b.chunk(2))
			d.Close()
		})
	}
}

// TestDiskRemovesEmptyBlobs: a blob whose chunks were all evicted goes
// once no process has it open.
func TestDiskRemovesEmptyBlobs(t *testing.T) {
	dir := t.TempDir()
	const limit = 4 * testChunk
	a := openTestDisk(t, dir, testChunk, limit)
	gone := newTestBlob(12, 4*testChunk, testChunk)
	addAll(t, a, gone)
	a.Close()
	c := openTestDisk(t, dir, testChunk, limit)
	addAll(t, c, newTestBlob(13, 4*testChunk, testChunk))
	addAll(t, c, newTestBlob(14, 4*testChunk, testChunk)) // a second pass sees gone empty
	if _, err := os.Stat(filepath.Join(dir, "v2", strconv.Itoa(testChunk), "sha256", gone.digest.Encoded())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the evicted blob's directory: %v, want it removed", err)
	}
}

// TestDiskRemovesOldLayout: the one-file-per-chunk cache of an older
// version is removed at open.
func TestDiskRemovesOldLayout(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "v1", "4096", "sha256", "ab", "0")
	if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	openTestDisk(t, dir, testChunk, 1<<20)
	if _, err := os.Stat(filepath.Join(dir, "v1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("v1 after open: %v, want it removed", err)
	}
}

func TestDiskVerify(t *testing.T) {
	ctx := context.Background()
	check := func(dg digest.Digest) func(io.Reader) error {
		return func(r io.Reader) error { return integrity.CheckBlob(ctx, dg, r) }
	}
	t.Run("good blob is marked verified, for every process", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 1<<20)
		other := openTestDisk(t, dir, testChunk, 1<<20)
		b := newTestBlob(20, 5*testChunk+17, testChunk)
		for i := range b.chunks() {
			if d.NeedsVerify(b.digest, b.chunks()) {
				t.Fatalf("NeedsVerify true with %d of %d chunks", i, b.chunks())
			}
			if err := d.Add(b.key(i), b.size(), b.chunk(i)); err != nil {
				t.Fatal(err)
			}
		}
		if !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("NeedsVerify false for a complete, unverified blob")
		}
		if err := d.Verify(b.digest, b.chunks(), check(b.digest)); err != nil {
			t.Fatal(err)
		}
		if !other.Verified(b.digest) || other.NeedsVerify(b.digest, b.chunks()) {
			t.Error("the other process does not see the blob verified")
		}
	})
	t.Run("a blob its check refuses is not marked; Drop removes it", func(t *testing.T) {
		d := openTestDisk(t, t.TempDir(), testChunk, 1<<20)
		b := newTestBlob(21, 3*testChunk, testChunk)
		bad := b
		bad.data = bytes.Clone(b.data)
		bad.data[testChunk+5] ^= 1
		addAll(t, d, bad)
		var mm *integrity.DigestMismatchError
		if err := d.Verify(b.digest, b.chunks(), check(b.digest)); !errors.As(err, &mm) || mm.Digest != b.digest {
			t.Fatalf("Verify = %v, want the check's DigestMismatchError for %s", err, b.digest)
		}
		if d.Verified(b.digest) || !d.NeedsVerify(b.digest, b.chunks()) {
			t.Fatal("a blob its check refused is marked verified")
		}
		d.Drop(b.digest)
		for i := range b.chunks() {
			mustMiss(t, d, b.key(i))
		}
		if d.Verified(b.digest) {
			t.Error("a bad blob is marked verified")
		}
	})
	t.Run("an evicted chunk clears the mark", func(t *testing.T) {
		dir := t.TempDir()
		d := openTestDisk(t, dir, testChunk, 4*testChunk)
		b := newTestBlob(22, 4*testChunk, testChunk)
		addAll(t, d, b)
		if err := d.Verify(b.digest, b.chunks(), check(b.digest)); err != nil {
			t.Fatal(err)
		}
		addAll(t, openTestDisk(t, dir, testChunk, 4*testChunk), newTestBlob(23, testChunk, testChunk))
		if d.Verified(b.digest) {
			t.Error("still verified with a chunk evicted")
		}
		if err := d.Verify(b.digest, b.chunks(), check(b.digest)); !errors.Is(err, ErrIncomplete) {
			t.Errorf("Verify of an incomplete blob = %v, want ErrIncomplete", err)
		}
	})
}

// TestDiskCloseWhileInUse: Close waits for the calls in progress, and
// calls after it find nothing and store nothing (never touching a closed
// file or an unmapped index).
func TestDiskCloseWhileInUse(t *testing.T) {
	for range 20 {
		d, err := OpenDisk(t.TempDir(), testChunk, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := newTestBlob(15, 8*testChunk, testChunk)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, testChunk)
				for i := range 200 {
					k := b.key(int64((g + i) % 8))
					_ = d.Add(k, b.size(), b.chunk(k.Index))
					if ok, _ := d.ReadAt(k, p, 0); ok && !bytes.Equal(p, b.chunk(k.Index)) {
						t.Error("wrong bytes")
					}
					d.Has(k)
					d.CachedBytes(b.digest)
					d.Used()
				}
			}()
		}
		time.Sleep(time.Millisecond)
		d.Close()
		wg.Wait()
		if d.Has(b.key(0)) || d.Used() != 0 {
			t.Fatal("a closed Disk answers")
		}
	}
}

// TestDiskEvictionLockHeldTooLong: a process stopped in an eviction pass
// (its lock held, not dead) does not hang a writer that needs room: after
// evictLockWait it writes without evicting.
func TestDiskEvictionLockHeldTooLong(t *testing.T) {
	dir := t.TempDir()
	d := openTestDisk(t, dir, testChunk, 2*testChunk)
	addAll(t, d, newTestBlob(16, 2*testChunk, testChunk))
	lf, err := os.Open(filepath.Join(dir, "evict.lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	b := newTestBlob(17, testChunk, testChunk)
	done := make(chan error, 1)
	go func() { done <- d.Add(b.key(0), b.size(), b.chunk(0)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(evictLockWait + 5*time.Second):
		t.Fatal("Add hung on an eviction lock held by another process")
	}
	mustRead(t, d, b.key(0), 0, b.chunk(0))
}
