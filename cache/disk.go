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
// times, which Open reads to rebuild the LRU order.
//
// Lock order: Disk.mu only; no I/O other than unlink happens under it.
type Disk struct {
	root      string
	dir       string // root/v1/<chunk size>
	chunkSize int64
	limit     int64
	lockFile  *os.File
	log       *slog.Logger

	mu       sync.Mutex // guards the fields below
	lru      *simplelru.LRU[string, int64] // path relative to root -> bytes
	used     int64                         // bytes of all chunk files in lru
	perBlob  map[digest.Digest]int64       // chunks present, per blob of this chunk size
	verified map[digest.Digest]bool
}

// ErrCacheBusy: another process uses the cache directory.
var ErrCacheBusy = errors.New("cache directory in use by another osimagefs process")

// OpenDisk opens (creating it if needed) the cache at root for chunks of
// chunkSize bytes, holding at most limit bytes. It takes an exclusive lock
// on the directory: a second process gets ErrCacheBusy. log may be nil.
func OpenDisk(root string, chunkSize, limit int64, log *slog.Logger) (*Disk, error) {
	if chunkSize <= 0 || limit < chunkSize {
		return nil, fmt.Errorf("disk cache %s: size %d must hold at least one chunk of %d bytes", root, limit, chunkSize)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("create disk cache %s: %w", root, err)
	}
	lf, err := lockDir(root)
	if err != nil {
		return nil, err
	}
	d := &Disk{
		root: root, dir: filepath.Join(root, "v1", strconv.FormatInt(chunkSize, 10)),
		chunkSize: chunkSize, limit: limit, lockFile: lf, log: log,
		perBlob: map[digest.Digest]int64{}, verified: map[digest.Digest]bool{},
	}
	d.lru, _ = simplelru.NewLRU[string, int64](1<<31-1, nil)
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

// load empties tmp/ and indexes the chunks on disk, oldest first.
func (d *Disk) load() error {
	tmp := filepath.Join(d.root, "tmp")
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(tmp, e.Name()))
		}
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
		if de.IsDir() {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil // removed meanwhile
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
	for _, e := range found {
		d.lru.Add(e.rel, e.size)
		d.used += e.size
		if dg, ok := d.blobOf(e.rel); ok {
			d.perBlob[dg]++
		}
	}
	d.mu.Lock()
	d.evictLocked(0)
	d.mu.Unlock()
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
	_, ok := d.lru.Get(rel)
	d.mu.Unlock()
	if !ok {
		return false, nil
	}
	f, err := os.Open(filepath.Join(d.root, rel))
	if err != nil {
		d.forget(rel)
		return false, nil
	}
	defer f.Close()
	n, err := f.ReadAt(p, off)
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			d.log.Warn("disk cache chunk shorter than expected, dropping it", "chunk", k.String())
			d.remove(rel)
			return false, nil
		}
		return false, fmt.Errorf("read cached %s: %w", k, err)
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
// the bytes on disk stay within the limit.
func (d *Disk) Add(k Key, b []byte) error {
	rel := d.path(k)
	size := int64(len(b))
	d.mu.Lock()
	if d.lru.Contains(rel) {
		d.mu.Unlock()
		return nil
	}
	d.evictLocked(size)
	d.mu.Unlock()

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
	d.mu.Lock()
	if !d.lru.Contains(rel) {
		d.lru.Add(rel, size)
		d.used += size
		d.perBlob[k.Digest]++
	}
	d.evictLocked(0)
	d.mu.Unlock()
	return nil
}

// evictLocked removes least recently used chunks until room more bytes fit.
func (d *Disk) evictLocked(room int64) {
	for d.used+room > d.limit {
		rel, size, ok := d.lru.RemoveOldest()
		if !ok {
			return
		}
		d.used -= size
		if dg, ok := d.blobOf(rel); ok {
			d.perBlob[dg]--
			if d.perBlob[dg] <= 0 {
				delete(d.perBlob, dg)
			}
			if d.verified[dg] {
				delete(d.verified, dg)
				_ = os.Remove(filepath.Join(d.root, filepath.Dir(rel), "verified"))
			}
		}
		_ = os.Remove(filepath.Join(d.root, rel))
	}
}

// forget drops rel from the index (its file is already gone).
func (d *Disk) forget(rel string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if size, ok := d.lru.Peek(rel); ok {
		d.lru.Remove(rel)
		d.used -= size
		if dg, ok := d.blobOf(rel); ok {
			d.perBlob[dg]--
		}
	}
}

// remove deletes rel and drops it from the index.
func (d *Disk) remove(rel string) {
	d.forget(rel)
	_ = os.Remove(filepath.Join(d.root, rel))
}
