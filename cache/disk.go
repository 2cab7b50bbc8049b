package cache

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"
)

// Disk is a persistent chunk store, content-addressed by blob digest and
// bounded in bytes, that survives restarts. Every mount of every image that
// shares a blob shares its chunks.
//
// Layout under the root directory:
//
//	lock                              flock held by the one process using the directory
//	tmp/                              chunks being written (removed at Open)
//	v1/<chunk size>/<alg>/<hex>/<i>   chunk i of the blob <alg>:<hex>
//	v1/<chunk size>/<alg>/<hex>/verified   the blob is complete and matched its digest
//
// A chunk is written to tmp/ and renamed into place, so a process killed at
// any moment leaves either a whole chunk or none: a chunk file is never
// partly written. Recency survives restarts through file modification
// times, which Open reads to rebuild the LRU order: a write sets a chunk's
// time, and a read that hits refreshes it when it is more than
// touchInterval old (so reads cost at most one metadata write per chunk per
// interval, and the order after a restart is exact to that interval).
//
// Lock order: Disk.mu only; no I/O other than unlink happens under it.
type Disk struct {
	root      string
	dir       string // root/v1/<chunk size>
	chunkSize int64
	limit     int64
	lockFile  *os.File
	log       *slog.Logger

	mu       sync.Mutex                         // guards the fields below
	lru      *simplelru.LRU[string, *diskEntry] // path relative to root -> its file
	used     int64                              // bytes of all chunk files in lru
	pending  int64                              // bytes of chunks being written (in tmp/, or renamed but not yet in lru)
	perBlob  map[digest.Digest]int64            // chunks present, per blob of this chunk size
	verified map[digest.Digest]bool
	gen      uint64 // last diskEntry.gen handed out
}

// diskEntry is one chunk file in the index.
type diskEntry struct {
	size int64
	// gen tells this entry from a later one for the same path, so that a
	// reader who found the file missing or short drops only the entry it
	// read, never a newer one written meanwhile.
	gen uint64
	// touched is the file's modification time as last set or seen, in
	// Unix nanoseconds.
	touched int64
}

// touchInterval is how stale a chunk's file time may get before a read
// refreshes it.
const touchInterval = time.Minute

// ErrCacheBusy: another process uses the cache directory.
var ErrCacheBusy = errors.New("cache directory in use by another osimagefs process")

// OpenDisk opens (creating it if needed) the cache at root for chunks of
// chunkSize bytes, holding at most limit bytes. It takes an exclusive lock
// on the directory: a second process gets ErrCacheBusy. Directories it
// creates get mode 0700; a root, tmp/ or data directory that another user
// could change (a symbolic link, owned by someone else, writable by group
// or others) is refused with ErrUnsafeDir. log may be nil.
func OpenDisk(root string, chunkSize, limit int64, log *slog.Logger) (*Disk, error) {
	if chunkSize <= 0 || limit < chunkSize {
		return nil, fmt.Errorf("disk cache %s: size %d must hold at least one chunk of %d bytes", root, limit, chunkSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(root, "v1", strconv.FormatInt(chunkSize, 10))
	for i, p := range []string{root, filepath.Join(root, "tmp"), filepath.Dir(dir), dir} {
		if err := safeDir(p, i == 0); err != nil {
			return nil, err
		}
	}
	lf, err := lockDir(root)
	if err != nil {
		return nil, err
	}
	d := &Disk{
		root: root, dir: dir,
		chunkSize: chunkSize, limit: limit, lockFile: lf, log: log,
		perBlob: map[digest.Digest]int64{}, verified: map[digest.Digest]bool{},
	}
	d.lru, _ = simplelru.NewLRU[string, *diskEntry](1<<31-1, nil)
	if err := d.load(); err != nil {
		lf.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the directory lock.
func (d *Disk) Close() error { return d.lockFile.Close() }

// Used is the bytes of chunks on disk.
func (d *Disk) Used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
}

// Limit is the most bytes the cache holds.
func (d *Disk) Limit() int64 { return d.limit }

// load empties tmp/ and indexes the chunks on disk, oldest first. The
// data directories are held to the rule of OpenDisk, and nothing in them
// but directories and regular files is accepted: a symbolic link there
// would make a read or a write follow it out of the cache.
func (d *Disk) load() error {
	if err := emptyTmp(filepath.Join(d.root, "tmp")); err != nil {
		return err
	}
	type entry struct {
		rel   string
		size  int64
		mtime time.Time
	}
	var found []entry
	v1 := filepath.Join(d.root, "v1")
	err := filepath.WalkDir(v1, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := de.Info() // lstat: WalkDir follows no link
		if err != nil {
			return nil // removed meanwhile
		}
		if de.IsDir() {
			return checkDir(p, info)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s is a symbolic link, which the cache never makes; remove it", ErrUnsafeDir, p)
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file (mode %s); remove it", ErrUnsafeDir, p, info.Mode())
		}
		rel, _ := filepath.Rel(d.root, p)
		if de.Name() == "verified" {
			if dg, ok := d.blobOf(rel); ok {
				d.verified[dg] = true
			}
			return nil
		}
		found = append(found, entry{rel, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan disk cache %s: %w", d.root, err)
	}
	slices.SortFunc(found, func(a, b entry) int { return a.mtime.Compare(b.mtime) })
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range found {
		d.gen++
		d.lru.Add(e.rel, &diskEntry{size: e.size, gen: d.gen, touched: e.mtime.UnixNano()})
		d.used += e.size
		if dg, ok := d.blobOf(e.rel); ok {
			d.perBlob[dg]++
		}
	}
	// A verified marker of a blob none of whose chunks are left is stale.
	for dg := range d.verified {
		if d.perBlob[dg] == 0 {
			delete(d.verified, dg)
			_ = os.Remove(filepath.Join(d.root, filepath.Dir(d.path(Key{Digest: dg})), "verified"))
		}
	}
	d.evictLocked(0)
	d.log.Debug("disk cache opened", "dir", d.root, "chunks", len(found), "bytes", d.used, "limit", d.limit)
	return nil
}

// path is the chunk file of k, relative to root.
func (d *Disk) path(k Key) string {
	return filepath.Join("v1", strconv.FormatInt(d.chunkSize, 10), string(k.Digest.Algorithm()), k.Digest.Encoded(), strconv.FormatInt(k.Index, 10))
}

// blobOf recovers the digest from a chunk path of this chunk size.
func (d *Disk) blobOf(rel string) (digest.Digest, bool) {
	dir := filepath.Dir(rel)
	enc := filepath.Base(dir)
	alg := filepath.Base(filepath.Dir(dir))
	if filepath.Dir(filepath.Dir(dir)) != filepath.Join("v1", strconv.FormatInt(d.chunkSize, 10)) {
		return "", false
	}
	dg := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return dg, dg.Validate() == nil
}

// ReadAt copies the bytes of chunk k from off into p, straight from the
// file into p. It reports false when the chunk is not cached (or its file
// is not as long as asked, which is treated as missing and removed).
func (d *Disk) ReadAt(k Key, p []byte, off int64) (bool, error) {
	rel := d.path(k)
	d.mu.Lock()
	e, ok := d.lru.Get(rel)
	var gen uint64
	var touch time.Time
	if ok {
		gen = e.gen
		if now := time.Now(); now.UnixNano()-e.touched >= int64(touchInterval) {
			e.touched, touch = now.UnixNano(), now
		}
	}
	d.mu.Unlock()
	if !ok {
		return false, nil
	}
	path := filepath.Join(d.root, rel)
	f, err := openChunk(path)
	if err != nil {
		d.forget(rel, gen)
		return false, nil
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			d.log.Warn("disk cache chunk shorter than expected, dropping it", "chunk", k.String())
			d.remove(rel, gen)
			return false, nil
		}
		return false, fmt.Errorf("read cached %s: %w", k, err)
	}
	if !touch.IsZero() {
		// Best effort: the file may have been evicted meanwhile.
		_ = os.Chtimes(path, touch, touch)
	}
	return true, nil
}

// Has reports whether chunk k is cached.
func (d *Disk) Has(k Key) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.Contains(d.path(k))
}

// Add stores chunk k. It first evicts least recently used chunks so that
// the bytes on disk, the chunks other Adds are writing included, stay
// within the limit (unless the chunks being written alone exceed it).
func (d *Disk) Add(k Key, b []byte) error {
	rel := d.path(k)
	size := int64(len(b))
	d.mu.Lock()
	if d.lru.Contains(rel) {
		d.mu.Unlock()
		return nil
	}
	d.evictLocked(size)
	d.pending += size
	d.mu.Unlock()
	if err := d.write(k, rel, b); err != nil {
		d.mu.Lock()
		d.pending -= size
		d.mu.Unlock()
		return err
	}
	d.mu.Lock()
	d.pending -= size
	if !d.lru.Contains(rel) {
		d.gen++
		d.lru.Add(rel, &diskEntry{size: size, gen: d.gen, touched: time.Now().UnixNano()})
		d.used += size
		d.perBlob[k.Digest]++
	}
	d.evictLocked(0)
	d.mu.Unlock()
	return nil
}

// write puts chunk k's file in place at rel: written to tmp/, then
// renamed, so that it is never seen partly written.
func (d *Disk) write(k Key, rel string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "chunk-")
	if err != nil {
		return fmt.Errorf("cache %s: %w", k, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := cmp.Or(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: write: %w", k, err)
	}
	final := filepath.Join(d.root, rel)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: %w", k, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache %s: %w", k, err)
	}
	return nil
}

// evictLocked removes least recently used chunks until room more bytes fit
// beside those on disk and those being written.
func (d *Disk) evictLocked(room int64) {
	for d.used+d.pending+room > d.limit {
		rel, e, ok := d.lru.RemoveOldest()
		if !ok {
			return
		}
		d.droppedLocked(rel, e)
		_ = os.Remove(filepath.Join(d.root, rel))
	}
}

// droppedLocked accounts for chunk rel (entry e) leaving the index: the
// bytes, the blob's chunk count, and the blob's verified mark (on disk
// too), since the blob is no longer complete.
func (d *Disk) droppedLocked(rel string, e *diskEntry) {
	d.used -= e.size
	dg, ok := d.blobOf(rel)
	if !ok {
		return
	}
	d.perBlob[dg]--
	if d.perBlob[dg] <= 0 {
		delete(d.perBlob, dg)
	}
	if d.verified[dg] {
		delete(d.verified, dg)
		_ = os.Remove(filepath.Join(d.root, filepath.Dir(rel), "verified"))
	}
}

// forget drops rel from the index (its file is already gone). With gen 0
// it drops whatever entry rel has; otherwise only the entry of that
// generation, so that a reader's stale finding never drops a chunk
// written after it looked.
func (d *Disk) forget(rel string, gen uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.lru.Peek(rel)
	if !ok || (gen != 0 && e.gen != gen) {
		return false
	}
	d.lru.Remove(rel)
	d.droppedLocked(rel, e)
	return true
}

// remove drops rel (of generation gen, or any with 0) from the index and
// deletes its file.
func (d *Disk) remove(rel string, gen uint64) {
	if d.forget(rel, gen) {
		_ = os.Remove(filepath.Join(d.root, rel))
	}
}
