package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// A blob complete and verified in the cache can be handed to the kernel,
// which then reads its data file itself (FUSE passthrough), for as long as
// it likes: past a forced unmount, past the death of the daemon that
// handed it over. Eviction must leave such a file alone, in every process
// sharing the directory, and only the kernel knows when it is done.
//
// So the file handed over carries its own pin: a shared OFD lock on byte
// pinByte of data, taken through that very file description. An OFD lock
// belongs to the description, not to a process, and goes when the last
// reference to the description goes: when the daemon has closed its copy
// and the kernel has let go of the file. An eviction pass takes the write
// lock on that byte, without waiting, before it evicts a chunk of the
// blob, and skips the blob when it cannot; a pin cannot be taken while the
// pass holds it, and is taken before the verified mark is checked, so a
// pass and a pin never both go ahead.
//
// Locks on data never conflict with the flock on data (blobfile.go) or the
// chunk locks on index: each kind has its own file or API.
const pinByte = 32

// OpenPinned opens the data file of blob dg read-only, pinned, when the
// blob is complete, verified and its data file unchanged (same mtime)
// since: a file for the kernel to serve directly. It returns nil, nil
// when the blob is not complete and verified, and nil with an error saying
// why when an eviction pass has it right now or its data file changed.
// The pin lasts until the file is closed and the kernel lets go of it.
func (d *Disk) OpenPinned(dg digest.Digest) (*os.File, error) {
	if !d.enter() {
		return nil, nil
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", dg, err)
	}
	if b == nil || !b.verified() {
		return nil, nil
	}
	f, err := os.OpenFile(b.data.Name(), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // removed meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("pin %s: %w", dg, err)
	}
	ok, err := lockByte(f, unix.F_RDLCK)
	if err != nil || !ok {
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("pin %s: %w", dg, err)
		}
		return nil, fmt.Errorf("pin %s: an eviction pass holds it", dg)
	}
	// Pinned: from now on no pass evicts a chunk, so what is checked now
	// holds while the file is open.
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pin %s: %w", dg, err)
	}
	switch {
	case !b.verified():
		f.Close()
		return nil, nil
	case !sameFile(st, b.data) || st.Size() != b.size:
		f.Close()
		return nil, fmt.Errorf("pin %s: its data file was replaced", dg)
	case st.ModTime().UnixNano() != b.verifiedMtime().Load():
		f.Close()
		return nil, fmt.Errorf("pin %s: its data file changed after it was verified (mtime %d, verified at %d)", dg, st.ModTime().UnixNano(), b.verifiedMtime().Load())
	}
	return f, nil
}

// ProbeFile opens a regular file of the cache directory read-only, so a
// caller can ask the kernel whether it would serve files of this
// filesystem directly.
func (d *Disk) ProbeFile() (*os.File, error) {
	p := filepath.Join(d.root, "usage")
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	return f, nil
}

// Pinned reports whether blob dg is pinned by any process.
func (d *Disk) Pinned(dg digest.Digest) bool {
	if !d.enter() {
		return false
	}
	defer d.life.RUnlock()
	b, err := d.blob(dg, 0, false)
	return err == nil && b != nil && b.pinned()
}

// pinned reports whether some file description other than b.data holds a
// pin on b.
func (b *blobFile) pinned() bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: pinByte, Len: 1}
	if err := unix.FcntlFlock(b.data.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return true // cannot tell: leave it alone
	}
	return lk.Type != unix.F_UNLCK
}

// holdPins takes the write lock on b's pin byte without waiting, for an
// eviction pass: false when b is pinned. No pin can be taken while it is
// held; releasePins gives it back.
func (b *blobFile) holdPins() bool {
	ok, err := lockByte(b.data, unix.F_WRLCK)
	return err == nil && ok
}

func (b *blobFile) releasePins() {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Start: pinByte, Len: 1}
	_ = unix.FcntlFlock(b.data.Fd(), unix.F_OFD_SETLK, &lk)
}

// lockByte takes an OFD lock of type typ on byte pinByte of f without
// waiting; false when a conflicting lock is held.
func lockByte(f *os.File, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Start: pinByte, Len: 1}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock byte %d of %s: %w", pinByte, f.Name(), err)
	}
	return true, nil
}

// mtime is the modification time of b's data file, in Unix nanoseconds.
func (b *blobFile) mtime() (int64, error) {
	st, err := b.data.Stat()
	if err != nil {
		return 0, err
	}
	return st.ModTime().UnixNano(), nil
}
