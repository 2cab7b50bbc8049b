package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// A blob in the disk cache is a directory holding two files:
//
//	data    the blob's bytes at their own offsets, a sparse file: a chunk
//	        not present is a hole
//	index   a 64-byte header, then one 16-byte slot per chunk
//
// Every process using the blob maps index shared, so a slot changed by one
// process is seen by all at once. Header (little endian):
//
//	0   [8]byte  magic "OSIFSIX1"
//	8   uint32   version (2)
//	12  uint32   flags: bit 0 set when the blob is complete and matched its digest
//	16  int64    chunk size
//	24  int64    blob size
//	32  int64    mtime of data, Unix nanoseconds, when it was verified
//
// Version 2 added the mtime and the pin (pin.go): a version 1 process
// would evict a pinned blob, so it must not share a blob with this one.
//
// Slot i (at 64+16*i): uint64 state, gen<<2 | writing<<1 | present, and
// int64 last use in Unix nanoseconds. A chunk's gen grows each time it is
// written or evicted, so a reader that saw the same state before and after
// its pread knows the bytes it read were the chunk's (the seqlock
// pattern). writing is set while its bytes are being written, so that an
// eviction pass counts them.
//
// Whoever writes or evicts chunk i holds an OFD byte-range lock on byte
// 64+16*i of index for the time it takes. The kernel drops such locks when
// their holder dies, so a killed process never blocks another; and since
// a slot is marked present only after its bytes are written, a process
// killed mid-write leaves a hole, never a partial chunk.
//
// Every process holding the blob open also holds a shared flock on data;
// an empty blob is removed only by whoever gets it exclusively.
const (
	indexHeader  = 64
	slotSize     = 16
	indexMagic   = "OSIFSIX1"
	indexVersion = 2
	flagOK       = 1 // complete and verified
)

// blobFile is one blob of the disk cache, open in this process.
type blobFile struct {
	digest    digest.Digest
	dir       string
	size      int64
	chunkSize int64
	chunks    int64
	data      *os.File // shared flock held while open
	index     *os.File // chunk locks are taken on it
	idx       []byte   // index, mapped shared
}

// errBadIndex: an index file is not one this version wrote.
var errBadIndex = errors.New("not a chunk index of this osimagefs version")

// openBlobFile opens the blob in dir. It reports fs.ErrNotExist when there
// is none, and errBadIndex when the index is not ours or disagrees with
// chunkSize (or, when size > 0, with size).
func openBlobFile(dir string, dg digest.Digest, chunkSize, size int64) (*blobFile, error) {
	for attempt := 0; ; attempt++ {
		b, stale, err := tryOpenBlobFile(dir, dg, chunkSize, size)
		if !stale || attempt == 3 {
			return b, err
		}
	}
}

// tryOpenBlobFile opens the blob in dir once; stale reports that the
// directory was removed while it was being opened (so try again).
func tryOpenBlobFile(dir string, dg digest.Digest, chunkSize, size int64) (b *blobFile, stale bool, err error) {
	data, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if b == nil {
			data.Close()
		}
	}()
	if err := syscall.Flock(int(data.Fd()), syscall.LOCK_SH); err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", data.Name(), err)
	}
	// A remover takes the lock exclusively, then moves the directory
	// away: the file open here may be one that is gone.
	if st, err := os.Lstat(data.Name()); err != nil || !sameFile(st, data) {
		return nil, true, fs.ErrNotExist
	}
	index, err := os.OpenFile(filepath.Join(dir, "index"), os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if b == nil {
			index.Close()
		}
	}()
	st, err := index.Stat()
	if err != nil {
		return nil, false, err
	}
	head := make([]byte, indexHeader)
	if _, err := index.ReadAt(head, 0); err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", errBadIndex, index.Name(), err)
	}
	cs, bs := int64(binary.LittleEndian.Uint64(head[16:])), int64(binary.LittleEndian.Uint64(head[24:]))
	switch {
	case !bytes.Equal(head[:8], []byte(indexMagic)) || binary.LittleEndian.Uint32(head[8:]) != indexVersion:
		return nil, false, fmt.Errorf("%w: %s", errBadIndex, index.Name())
	case cs != chunkSize || bs <= 0 || (size > 0 && bs != size):
		return nil, false, fmt.Errorf("%w: %s is for chunks of %d bytes of a %d-byte blob, not %d of %d", errBadIndex, index.Name(), cs, bs, chunkSize, size)
	case st.Size() != indexSize(bs, cs):
		return nil, false, fmt.Errorf("%w: %s is %d bytes, want %d", errBadIndex, index.Name(), st.Size(), indexSize(bs, cs))
	}
	// Readers mostly stream a blob: a larger read-ahead from the file.
	_ = unix.Fadvise(int(data.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	idx, err := unix.Mmap(int(index.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, false, fmt.Errorf("map %s: %w", index.Name(), err)
	}
	return &blobFile{digest: dg, dir: dir, size: bs, chunkSize: cs, chunks: ceilDiv(bs, cs), data: data, index: index, idx: idx}, false, nil
}

// createBlobFile makes a blob directory for size bytes in tmp and moves
// it to dir, unless another process made dir first (then the one it made
// is used). The index is allocated in full up front, so that on a full
// disk this fails rather than a write to the mapped index (on a
// copy-on-write filesystem that guarantee is weaker: see the README's
// limits).
func createBlobFile(tmp, dir string, dg digest.Digest, chunkSize, size int64) (*blobFile, error) {
	work, err := os.MkdirTemp(tmp, "blob-")
	if err != nil {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	defer os.RemoveAll(work) // left only when the move failed
	head := make([]byte, indexHeader)
	copy(head, indexMagic)
	binary.LittleEndian.PutUint32(head[8:], indexVersion)
	binary.LittleEndian.PutUint64(head[16:], uint64(chunkSize))
	binary.LittleEndian.PutUint64(head[24:], uint64(size))
	if err := writeAllocated(filepath.Join(work, "index"), head, indexSize(size, chunkSize)); err != nil {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	if err := writeAllocated(filepath.Join(work, "data"), nil, 0); err != nil {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	if err := os.Truncate(filepath.Join(work, "data"), size); err != nil {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	if err := os.Rename(work, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return nil, fmt.Errorf("create cache entry for %s: %w", dg, err)
	}
	return openBlobFile(dir, dg, chunkSize, size)
}

// writeAllocated writes a file of n bytes starting with head, its blocks
// allocated.
func writeAllocated(p string, head []byte, n int64) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if n > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			if !errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("allocate %s: %w", p, err)
			}
			if _, err := f.WriteAt(make([]byte, n), 0); err != nil {
				return err
			}
		}
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return err
	}
	return f.Close()
}

func (b *blobFile) close() {
	_ = unix.Munmap(b.idx)
	b.index.Close()
	b.data.Close() // drops the shared lock
}

func indexSize(size, chunkSize int64) int64 {
	return indexHeader + slotSize*ceilDiv(size, chunkSize)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// chunkLen is the length of chunk i.
func (b *blobFile) chunkLen(i int64) int64 { return min(b.chunkSize, b.size-i*b.chunkSize) }

func (b *blobFile) state(i int64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&b.idx[indexHeader+slotSize*i]))
}

func (b *blobFile) lastUse(i int64) *atomic.Int64 {
	return (*atomic.Int64)(unsafe.Pointer(&b.idx[indexHeader+slotSize*i+8]))
}

func (b *blobFile) flags() *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&b.idx[12]))
}

// verifiedMtime is the data file's mtime when the blob was verified: a
// file changed since (someone wrote to it) is not handed to the kernel.
func (b *blobFile) verifiedMtime() *atomic.Int64 {
	return (*atomic.Int64)(unsafe.Pointer(&b.idx[32]))
}

const (
	presentBit = 1
	writingBit = 2
)

func present(state uint64) bool { return state&presentBit != 0 }
func writing(state uint64) bool { return state&writingBit != 0 }

// nextState is the state after a write (present) or an eviction: the next
// generation, not writing.
func nextState(state uint64, isPresent bool) uint64 {
	s := (state>>2 + 1) << 2
	if isPresent {
		s |= presentBit
	}
	return s
}

// verified reports whether the blob is complete and matched its digest.
func (b *blobFile) verified() bool { return b.flags().Load()&flagOK != 0 }

func (b *blobFile) setVerified(ok bool) {
	for {
		old := b.flags().Load()
		nw := old &^ flagOK
		if ok {
			nw |= flagOK
		}
		if b.flags().CompareAndSwap(old, nw) {
			return
		}
	}
}

// lockChunk takes the lock on chunk i without waiting; false means another
// open file description (another process, or another Disk) holds it.
func (b *blobFile) lockChunk(i int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: indexHeader + slotSize*i, Len: 1}
	err := unix.FcntlFlock(b.index.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock chunk %d of %s: %w", i, b.digest, err)
	}
	return true, nil
}

func (b *blobFile) unlockChunk(i int64) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: indexHeader + slotSize*i, Len: 1}
	_ = unix.FcntlFlock(b.index.Fd(), unix.F_OFD_SETLK, &lk)
}

// punch frees the disk blocks of chunk i.
func (b *blobFile) punch(i int64) {
	_ = unix.Fallocate(int(b.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, i*b.chunkSize, b.chunkLen(i))
}

// sameFile reports whether st describes the open file f.
func sameFile(st fs.FileInfo, f *os.File) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(st, fst)
}
