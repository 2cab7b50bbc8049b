package cache

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// evictSlack is how far below the limit a pass brings the cache beyond
// the room asked for, so that passes are not made for every chunk: a
// 32nd of the limit, at most 64 MiB.
func (d *Disk) evictSlack() int64 { return min(d.limit/32, 64<<20) }

// evict is one eviction pass, under the exclusive evict.lock: it counts
// every chunk present in the directory (every chunk size, every process),
// stores the count in the shared usage, and evicts least recently used
// chunks until room more bytes fit under the limit with some slack. Blob
// directories left empty that no process has open are removed.
func (d *Disk) evict(room int64) error {
	lf, err := os.OpenFile(filepath.Join(d.root, "evict.lock"), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%w: %s is a symbolic link; remove it", ErrUnsafeDir, filepath.Join(d.root, "evict.lock"))
	}
	if err != nil {
		return fmt.Errorf("open eviction lock: %w", err)
	}
	defer lf.Close()
	if ok, err := flockWithin(lf, evictLockWait); err != nil {
		return fmt.Errorf("take eviction lock: %w", err)
	} else if !ok {
		// A process stopped (not dead) in a pass holds it: go on without
		// evicting rather than hang; the next pass catches up.
		d.log.Warn("disk cache eviction lock held for too long; writing without evicting", "lock", lf.Name(), "waited", evictLockWait)
		return nil
	}
	if room > 0 && d.usage.used()+room <= d.limit+d.usage.pinned() {
		return nil // another process made room meanwhile
	}

	type cand struct {
		b       *blobFile
		i       int64
		lastUse int64
	}
	var cands []cand
	var total, pinned int64
	blobs, closeAll := d.allBlobs()
	defer closeAll()
	for _, b := range blobs {
		n, bytes := int64(0), int64(0)
		isPinned := b.pinned()
		for i := range b.chunks {
			switch s := b.state(i).Load(); {
			case present(s):
				n++
				bytes += b.chunkLen(i)
				if !isPinned {
					cands = append(cands, cand{b, i, b.lastUse(i).Load()})
				}
			case writing(s) && d.stillWriting(b, i, s):
				n++
				bytes += b.chunkLen(i)
			}
		}
		total += bytes
		if isPinned {
			pinned += bytes
		}
		if n == 0 {
			d.removeIfUnused(b)
		}
	}
	d.usage.set(total)
	d.usage.setPinned(pinned)
	// Pinned blobs stay whatever the limit says: the others are held to
	// the limit on top of them, not evicted to make up for them.
	limit := d.limit + pinned
	target := limit - room
	if room > 0 || total > limit {
		target -= d.evictSlack()
	}
	if total <= target {
		return nil
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.lastUse, b.lastUse) })
	// Each blob evicted from is held against pins until the pass ends; one
	// pinned since the count above is skipped.
	held := map[*blobFile]bool{}
	defer func() {
		for b, ok := range held {
			if ok {
				b.releasePins()
			}
		}
	}()
	evicted := 0
	for _, c := range cands {
		if total <= target {
			break
		}
		ok, seen := held[c.b]
		if !seen {
			ok = c.b.holdPins()
			held[c.b] = ok
		}
		if !ok {
			continue
		}
		if n := d.evictChunk(c.b, c.i); n > 0 {
			total -= n
			evicted++
		}
	}
	d.log.Debug("disk cache eviction", "evicted", evicted, "bytes", total, "limit", d.limit, "pinned", pinned)
	return nil
}

// stillWriting reports whether chunk i of b, in state s (writing), is
// being written: its lock is held. A writer killed mid-write leaves the
// mark with no lock; it is cleared here.
func (d *Disk) stillWriting(b *blobFile, i int64, s uint64) bool {
	ok, err := d.lock(b, i)
	if err != nil || !ok {
		return true
	}
	defer d.unlock(b, i)
	b.state(i).CompareAndSwap(s, s&^writingBit)
	return false
}

// evictLockWait is the longest an eviction waits for another process's
// pass (which takes milliseconds).
const evictLockWait = 2 * time.Second

// flockWithin takes an exclusive flock on f, trying until wait has passed.
func flockWithin(f *os.File, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return false, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// evictChunk drops chunk i of b unless a fetcher holds it, and returns the
// bytes freed. The slot changes before the verified mark is cleared (see
// Verify) and before the blocks go, so a reader that raced with it sees
// the change and does not use what it read.
func (d *Disk) evictChunk(b *blobFile, i int64) int64 {
	ok, err := d.lock(b, i)
	if err != nil || !ok {
		return 0
	}
	defer d.unlock(b, i)
	s := b.state(i).Load()
	if !present(s) {
		return 0
	}
	b.state(i).Store(nextState(s, false))
	b.setVerified(false)
	b.punch(i)
	n := b.chunkLen(i)
	d.usage.add(-n)
	return n
}

// allBlobs opens every blob directory of every chunk size: those open
// here are reused, the others opened until the returned func is called.
// A directory whose index is not ours is removed if nobody has it open.
func (d *Disk) allBlobs() ([]*blobFile, func()) {
	var all, opened []*blobFile
	v2 := filepath.Join(d.root, "v2")
	for _, sizeDir := range readDirs(v2) {
		cs, err := strconv.ParseInt(sizeDir, 10, 64)
		if err != nil || cs <= 0 {
			continue
		}
		for _, alg := range readDirs(filepath.Join(v2, sizeDir)) {
			for _, enc := range readDirs(filepath.Join(v2, sizeDir, alg)) {
				dg := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
				if dg.Validate() != nil {
					continue
				}
				dir := filepath.Join(v2, sizeDir, alg, enc)
				if cs == d.chunkSize {
					d.mu.Lock()
					b := d.blobs[dg]
					d.mu.Unlock()
					if b != nil {
						all = append(all, b)
						continue
					}
				}
				b, err := openBlobFile(dir, dg, cs, 0)
				if errors.Is(err, errBadIndex) && removeUnusedDir(d.tmp, dir) {
					d.log.Warn("disk cache entry not of this version removed", "dir", dir, "err", err)
				}
				if err != nil {
					continue
				}
				all, opened = append(all, b), append(opened, b)
			}
		}
	}
	return all, func() {
		for _, b := range opened {
			b.close()
		}
	}
}

// removeIfUnused removes the empty blob b if no other process (and no
// fetcher here) has it open: the shared lock every opener holds on data
// must convert to an exclusive one.
func (d *Disk) removeIfUnused(b *blobFile) {
	d.mu.Lock()
	mine := d.blobs[b.digest] == b
	d.mu.Unlock()
	if mine {
		return
	}
	if err := syscall.Flock(int(b.data.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return
	}
	removeBlobDir(d.tmp, b.dir)
}

// removeUnusedDir removes the blob directory dir if no process has it
// open (an exclusive flock on its data file), and reports whether it did.
func removeUnusedDir(tmp, dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false
	}
	removeBlobDir(tmp, dir)
	return true
}

// removeBlobDir moves dir into tmp (so no process finds it any more) and
// removes it there.
func removeBlobDir(tmp, dir string) {
	work, err := os.MkdirTemp(tmp, "gone-")
	if err != nil {
		return
	}
	if err := os.Rename(dir, filepath.Join(work, "blob")); err != nil {
		os.Remove(work)
		return
	}
	if r, err := os.OpenRoot(tmp); err == nil {
		_ = r.RemoveAll(filepath.Base(work))
		r.Close()
	}
}

// readDirs lists the names of the directories in p (never following a
// symbolic link).
func readDirs(p string) []string {
	des, err := os.ReadDir(p)
	if err != nil {
		return nil
	}
	var names []string
	for _, de := range des {
		if de.IsDir() {
			names = append(names, de.Name())
		}
	}
	return names
}

// cleanTmp removes what processes killed while creating blob directories
// left in tmp more than age ago. It works through an os.Root, so nothing
// planted in tmp can turn a removal onto files elsewhere.
func cleanTmp(tmp string, age time.Duration) error {
	r, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("open disk cache directory %s: %w", tmp, err)
	}
	defer r.Close()
	f, err := r.Open(".")
	if err != nil {
		return fmt.Errorf("open disk cache directory %s: %w", tmp, err)
	}
	des, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("list disk cache directory %s: %w", tmp, err)
	}
	for _, de := range des {
		if info, err := de.Info(); err == nil && time.Since(info.ModTime()) > age {
			_ = r.RemoveAll(de.Name())
		}
	}
	return nil
}

// removeOldLayout removes the cache of an older osimagefs (v1: one file
// per chunk) unless a process of that version still holds it.
func removeOldLayout(root string, log *slog.Logger) {
	v1 := filepath.Join(root, "v1")
	if _, err := os.Lstat(v1); errors.Is(err, fs.ErrNotExist) {
		return
	}
	lp := filepath.Join(root, "lock")
	lf, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		log.Warn("an older osimagefs still uses this cache directory; its chunks stay until it stops", "dir", v1)
		return
	}
	if r, err := os.OpenRoot(root); err == nil {
		_ = r.RemoveAll("v1")
		r.Close()
	}
	_ = os.Remove(lp)
	log.Info("removed the cache of an older osimagefs (one file per chunk)", "dir", v1)
}

// ErrNoHoles: the cache directory's filesystem cannot punch holes in a
// file, so evicted chunks would never give their space back.
var ErrNoHoles = errors.New("the disk cache's filesystem cannot punch holes in files (fallocate PUNCH_HOLE); use a local filesystem such as ext4, XFS, btrfs or tmpfs")

// checkHoles makes sure the filesystem of dir frees the blocks of a range
// punched out of a file, as eviction does.
func checkHoles(dir string) error {
	f, err := os.CreateTemp(dir, "holes-")
	if err != nil {
		return fmt.Errorf("disk cache %s: %w", dir, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, 8192)); err != nil {
		return fmt.Errorf("disk cache %s: %w", dir, err)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoHoles, dir, err)
	}
	return nil
}
