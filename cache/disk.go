package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Disk is a persistent chunk store shared by every process that opens the
// same directory, content-addressed by blob digest and bounded in bytes
// across all of them. It has no daemon and no lock held for long: like
// Go's build cache, any process may add and any may evict.
//
// Layout under the root directory:
//
//	usage                          bytes of chunks present, shared (usage.go)
//	evict.lock                     flock held during an eviction pass
//	tmp/                           blob directories being created
//	v2/<chunk size>/<alg>/<hex>/   one blob: data and index (blobfile.go)
//
// A complete blob is one plain file (data), which the kernel can serve
// directly. Least recently used chunks go first, across processes: each
// read and write stamps its chunk's slot in the shared index.
//
// Locks: chunk locks are only ever tried, never waited for, so they may be
// taken in any order and around evict.lock, the one lock waited for (an
// eviction pass is short). Disk.mu is innermost; no I/O happens under it.
type Disk struct {
	root      string
	tmp       string
	dir       string // root/v2/<chunk size>
	chunkSize int64
	limit     int64
	log       *slog.Logger
	usage     *usage

	// life is held shared by every call for its duration, and exclusively
	// by Close: the files and mappings are never closed under a call.
	life   sync.RWMutex
	closed bool // guarded by life

	mu     sync.Mutex                  // guards the fields below
	blobs  map[digest.Digest]*blobFile // blobs of this chunk size open here
	claims map[claimKey]bool           // chunk locks this Disk holds
}

// claimKey names a chunk of one blob directory (so of one chunk size).
type claimKey struct {
	dir string
	i   int64
}

// ClaimResult is what Claim found.
type ClaimResult int

const (
	// Claimed: the caller now holds the chunk and must Add or Release it.
	Claimed ClaimResult = iota
	// Present: the chunk is on disk already.
	Present
	// Busy: another fetcher, in this process or another, holds it.
	Busy
)

// stampEvery is how often a read may stamp a chunk's last use at most:
// each stamp dirties a page of the shared index, and the LRU order is
// exact to this.
const stampEvery = 100 * time.Millisecond

// errClosed: a call on a closed Disk.
var errClosed = errors.New("disk cache is closed")

// staleTmp is how old an entry of tmp/ must be before any process may
// remove it as left by a killed one (making a blob directory takes
// milliseconds).
const staleTmp = time.Hour

// OpenDisk opens (creating it if needed) the cache at root for chunks of
// chunkSize bytes, holding at most limit bytes of chunks of any size
// together with every other process using root (within one chunk per
// process writing). Directories it creates get mode 0700; a root, tmp/ or
// data directory that another user could change (a symbolic link, owned
// by someone else, writable by group or others) is refused with
// ErrUnsafeDir. log may be nil.
func OpenDisk(root string, chunkSize, limit int64, log *slog.Logger) (*Disk, error) {
	if chunkSize <= 0 || limit < chunkSize {
		return nil, fmt.Errorf("disk cache %s: size %d must hold at least one chunk of %d bytes", root, limit, chunkSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(root, "v2", strconv.FormatInt(chunkSize, 10))
	tmp := filepath.Join(root, "tmp")
	for i, p := range []string{root, tmp, filepath.Dir(dir), dir} {
		if err := safeDir(p, i == 0); err != nil {
			return nil, err
		}
	}
	if err := checkTree(filepath.Dir(dir)); err != nil {
		return nil, err
	}
	if err := cleanTmp(tmp, staleTmp); err != nil {
		return nil, err
	}
	if err := checkHoles(tmp); err != nil {
		return nil, err
	}
	removeOldLayout(root, log)
	u, _, err := openUsage(root, tmp)
	if err != nil {
		return nil, err
	}
	d := &Disk{
		root: root, tmp: tmp, dir: dir, chunkSize: chunkSize, limit: limit, log: log, usage: u,
		blobs: map[digest.Digest]*blobFile{}, claims: map[claimKey]bool{},
	}
	// Count what is there, and enforce this limit (which may be smaller
	// than the last one).
	if err := d.evict(0); err != nil {
		d.Close()
		return nil, err
	}
	log.Debug("disk cache opened", "dir", root, "bytes", d.Used(), "limit", limit)
	return d, nil
}

// Close closes the blobs open here, releasing their chunk locks, once the
// calls in progress have returned. Later calls find nothing cached and
// store nothing.
func (d *Disk) Close() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.mu.Lock()
	blobs := d.blobs
	d.blobs = map[digest.Digest]*blobFile{}
	d.mu.Unlock()
	for _, b := range blobs {
		b.close()
	}
	d.usage.close()
	return nil
}

// enter starts a call: false when the Disk is closed. A true answer must
// be followed by d.life.RUnlock().
func (d *Disk) enter() bool {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return false
	}
	return true
}

// Used is the bytes of chunks on disk, written by any process.
func (d *Disk) Used() int64 {
	if !d.enter() {
		return 0
	}
	defer d.life.RUnlock()
	return d.usage.used()
}

// Limit is the most bytes the cache holds.
func (d *Disk) Limit() int64 { return d.limit }

// blobDir is the directory of blob dg for this chunk size.
func (d *Disk) blobDir(dg digest.Digest) string {
	return filepath.Join(d.dir, string(dg.Algorithm()), dg.Encoded())
}

// blob returns blob dg open here: opened from disk, or created (for size
// bytes) when create is set. It returns nil, nil when the blob is not on
// disk and create is not set.
func (d *Disk) blob(dg digest.Digest, size int64, create bool) (*blobFile, error) {
	d.mu.Lock()
	b := d.blobs[dg]
	d.mu.Unlock()
	if b != nil {
		if size > 0 && b.size != size {
			return nil, fmt.Errorf("%w: the cache holds %s as %d bytes, not %d", errBadIndex, dg, b.size, size)
		}
		return b, nil
	}
	if err := dg.Validate(); err != nil {
		return nil, fmt.Errorf("cache %s: %w", dg, err)
	}
	dir := d.blobDir(dg)
	b, err := openBlobFile(dir, dg, d.chunkSize, size)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, nil
		}
		b, err = createBlobFile(d.tmp, dir, dg, d.chunkSize, size)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.blobs[dg]; old != nil {
		b.close()
		return old, nil
	}
	d.blobs[dg] = b
	return b, nil
}

// ReadAt copies the bytes of chunk k from off into p, straight from the
// file into p. It reports false when the chunk is not cached, or was
// evicted while it was being read (the bytes in p are then not to be
// used).
func (d *Disk) ReadAt(k Key, p []byte, off int64) (bool, error) {
	if !d.enter() {
		return false, nil
	}
	defer d.life.RUnlock()
	b, err := d.blob(k.Digest, 0, false)
	if err != nil || b == nil {
		return false, nil
	}
	i := k.Index
	if i < 0 || i >= b.chunks || off < 0 || off+int64(len(p)) > b.chunkLen(i) {
		return false, nil
	}
	before := b.state(i).Load()
	if !present(before) {
		return false, nil
	}
	n, err := b.data.ReadAt(p, i*b.chunkSize+off)
	if b.state(i).Load() != before {
		return false, nil // evicted, and perhaps written again, meanwhile
	}
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			d.log.Warn("disk cache blob shorter than its index says", "chunk", k.String(), "file", b.data.Name())
			return false, nil
		}
		return false, fmt.Errorf("read cached %s: %w", k, err)
	}
	if now := time.Now().UnixNano(); now-b.lastUse(i).Load() > int64(stampEvery) {
		b.lastUse(i).Store(now)
	}
	return true, nil
}

// Has reports whether chunk k is cached.
func (d *Disk) Has(k Key) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(k.Digest, 0, false)
	return err == nil && b != nil && k.Index >= 0 && k.Index < b.chunks && present(b.state(k.Index).Load())
}

// Claim takes chunk k of a blob of size bytes for the caller to fetch and
// Fill, so that no other process (or other fetcher here) fetches it at the
// same time. On Claimed the caller must call Fill or Release, once.
func (d *Disk) Claim(k Key, size int64) (ClaimResult, error) {
	if !d.enter() {
		return Busy, errClosed
	}
	defer d.life.RUnlock()
	b, err := d.blob(k.Digest, size, true)
	if err != nil {
		return Busy, err
	}
	if k.Index < 0 || k.Index >= b.chunks {
		return Busy, fmt.Errorf("claim %s: a %d-byte blob has %d chunks", k, b.size, b.chunks)
	}
	if present(b.state(k.Index).Load()) {
		return Present, nil
	}
	ok, err := d.lock(b, k.Index)
	if err != nil || !ok {
		return Busy, err
	}
	if present(b.state(k.Index).Load()) {
		d.unlock(b, k.Index)
		return Present, nil
	}
	return Claimed, nil
}

// Release gives up the caller's claim on chunk k without filling it (the
// fetch failed). Only the claim's owner may call it.
func (d *Disk) Release(k Key) {
	if !d.enter() {
		return
	}
	defer d.life.RUnlock()
	d.release(k)
}

// release is Release inside a call.
func (d *Disk) release(k Key) {
	d.mu.Lock()
	b := d.blobs[k.Digest]
	d.mu.Unlock()
	if b != nil {
		d.unlock(b, k.Index)
	}
}

// Add stores chunk k of a blob of size bytes fetched without a claim: it
// takes the chunk's lock itself, and leaves the chunk to whoever holds it
// (in this process or another) when it cannot. It first evicts least
// recently used chunks so that the cache stays within its limit.
func (d *Disk) Add(k Key, size int64, data []byte) error {
	if !d.enter() {
		return errClosed
	}
	defer d.life.RUnlock()
	b, err := d.chunkOf(k, size, data)
	if err != nil {
		return err
	}
	ok, err := d.lock(b, k.Index)
	if err != nil || !ok {
		return err
	}
	defer d.unlock(b, k.Index)
	return d.write(b, k, data)
}

// Fill stores chunk k, which the caller claimed (Claimed), and ends the
// claim, as Add otherwise.
func (d *Disk) Fill(k Key, size int64, data []byte) error {
	if !d.enter() {
		return errClosed
	}
	defer d.life.RUnlock()
	b, err := d.chunkOf(k, size, data)
	if err != nil {
		d.release(k)
		return err
	}
	defer d.unlock(b, k.Index)
	if !d.holds(b, k.Index) {
		return fmt.Errorf("cache %s: filled without a claim", k)
	}
	return d.write(b, k, data)
}

// chunkOf returns the blob of chunk k, creating it, and checks that data
// is the chunk's length.
func (d *Disk) chunkOf(k Key, size int64, data []byte) (*blobFile, error) {
	b, err := d.blob(k.Digest, size, true)
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", k, err)
	}
	if i := k.Index; i < 0 || i >= b.chunks || int64(len(data)) != b.chunkLen(i) {
		return nil, fmt.Errorf("cache %s: %d bytes, want %d", k, len(data), b.chunkLen(max(0, min(i, b.chunks-1))))
	}
	return b, nil
}

// write puts chunk k of b in place, under its lock: marked writing (so an
// eviction pass counts it), counted in usage, written, then marked
// present. A failed write gives the bytes and blocks back.
func (d *Disk) write(b *blobFile, k Key, data []byte) error {
	i, n := k.Index, int64(len(data))
	s := b.state(i).Load()
	if present(s) {
		return nil
	}
	b.state(i).Store(s | writingBit)
	if err := d.reserve(n); err != nil {
		b.state(i).Store(s)
		return fmt.Errorf("cache %s: %w", k, err)
	}
	if _, err := b.data.WriteAt(data, i*b.chunkSize); err != nil {
		d.usage.add(-n)
		b.punch(i)
		b.state(i).Store(s)
		return fmt.Errorf("cache %s: write: %w", k, err)
	}
	b.lastUse(i).Store(time.Now().UnixNano())
	if !b.state(i).CompareAndSwap(s|writingBit, nextState(s, true)) {
		d.usage.add(-n) // cannot happen under the lock; never go back
		return fmt.Errorf("cache %s: its state changed while it was being written", k)
	}
	// A write follows an eviction, which a blob marked verified cannot
	// have had since: a mark left by a verification killed half way goes.
	b.setVerified(false)
	return nil
}

// reserve counts n more bytes in the shared usage before they are
// written, so that every process sees them at once, evicting first when
// they would not fit. If an eviction pass cannot make room (every chunk
// held by a fetcher, or the eviction lock held too long) the bytes are
// counted anyway: the cache then runs over its limit by chunks being
// written.
func (d *Disk) reserve(n int64) error {
	for evicted := false; ; {
		u := d.usage.used()
		if u+n <= d.limit+d.usage.pinned() || evicted {
			if d.usage.counter().CompareAndSwap(u, u+n) {
				return nil
			}
			continue
		}
		if err := d.evict(n); err != nil {
			return err
		}
		evicted = true
	}
}

// lock takes chunk i of b for this Disk: false when another fetcher holds
// it. The map keeps two callers here apart, since an OFD lock does not
// conflict with itself.
func (d *Disk) lock(b *blobFile, i int64) (bool, error) {
	ck := claimKey{b.dir, i}
	d.mu.Lock()
	if d.claims[ck] {
		d.mu.Unlock()
		return false, nil
	}
	d.claims[ck] = true
	d.mu.Unlock()
	ok, err := b.lockChunk(i)
	if err != nil || !ok {
		d.mu.Lock()
		delete(d.claims, ck)
		d.mu.Unlock()
	}
	return ok, err
}

// unlock releases chunk i of b, if this Disk holds it.
func (d *Disk) unlock(b *blobFile, i int64) {
	ck := claimKey{b.dir, i}
	d.mu.Lock()
	held := d.claims[ck]
	delete(d.claims, ck)
	d.mu.Unlock()
	if held {
		b.unlockChunk(i)
	}
}

// holds reports whether this Disk holds chunk i of b.
func (d *Disk) holds(b *blobFile, i int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.claims[claimKey{b.dir, i}]
}

// CachedBytes is how many bytes of blob dg are on disk.
func (d *Disk) CachedBytes(dg digest.Digest) int64 {
	if !d.enter() {
		return 0
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	if err != nil || b == nil {
		return 0
	}
	var n int64
	for i := range b.chunks {
		if present(b.state(i).Load()) {
			n += b.chunkLen(i)
		}
	}
	return n
}
