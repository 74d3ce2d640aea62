package faultfs

import (
	"io"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// file is an open handle. Its I/O methods are safe for concurrent use (the
// store's coordinator syncs a WAL while the object's goroutine writes it);
// its lock methods are called by the one SQLite connection that owns it.
type file struct {
	fs    *FS
	n     *node
	gen   uint64 // the FS generation it was opened in; a cut kills it
	name  string
	flags vfs.OpenFlag
	psow  bool

	// The locks this handle holds, owned by its connection.
	lock     vfs.LockLevel
	reserved bool
	pending  bool
}

var (
	_ vfs.FileLockState          = (*file)(nil)
	_ vfs.FileSizeHint           = (*file)(nil)
	_ vfs.FileHasMoved           = (*file)(nil)
	_ vfs.FilePowersafeOverwrite = (*file)(nil)
)

// enter takes the FS lock for reading if the handle is alive (no cut since
// it was opened); the caller then unlocks fs.mu.
func (f *file) enter() error {
	f.fs.mu.RLock()
	if f.gen != f.fs.gen {
		f.fs.mu.RUnlock()
		return ErrPowerCut
	}
	return nil
}

func (f *file) exit() { f.fs.mu.RUnlock() }

// Close releases the handle's locks and, for a delete-on-close file, its
// name. On a dead handle it does nothing and succeeds.
func (f *file) Close() error {
	if err := f.enter(); err != nil {
		return nil
	}
	defer f.exit()
	f.unlock(vfs.LOCK_NONE)
	if f.flags&vfs.OPEN_DELETEONCLOSE != 0 && f.name != "" {
		f.fs.unlink(f.name, f.n)
	}
	return nil
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	if err := f.enter(); err != nil {
		return 0, err
	}
	defer f.exit()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if off >= int64(len(f.n.cur)) {
		return 0, io.EOF
	}
	k := copy(b, f.n.cur[off:])
	if k < len(b) {
		return k, io.EOF
	}
	return k, nil
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	if err := f.enter(); err != nil {
		return 0, err
	}
	defer f.exit()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.write(b, off)
	return len(b), nil
}

func (f *file) Truncate(size int64) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	f.n.truncate(size)
	return nil
}

// SizeHint grows the file to size (the OS VFS allocates and truncates up).
func (f *file) SizeHint(size int64) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if size > int64(len(f.n.cur)) {
		f.n.truncate(size)
	}
	return nil
}

// Sync makes the file's current bytes and size durable, whichever handle
// wrote them.
func (f *file) Sync(flags vfs.SyncFlag) error {
	f.fs.delaySync()
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	f.n.mu.Lock()
	f.n.sync()
	f.n.mu.Unlock()
	f.fs.countSyncs(1)
	return nil
}

func (f *file) Size() (int64, error) {
	if err := f.enter(); err != nil {
		return 0, err
	}
	defer f.exit()
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return int64(len(f.n.cur)), nil
}

// Lock takes a lock as SQLite's unix VFS does with POSIX locks, without
// waiting: a conflict returns BUSY.
func (f *file) Lock(lock vfs.LockLevel) error {
	if f.lock >= lock {
		return nil
	}
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	if lock >= vfs.LOCK_RESERVED && f.flags&vfs.OPEN_READONLY != 0 {
		return sqlite3.IOERR_LOCK
	}
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	switch lock {
	case vfs.LOCK_SHARED:
		if n.pending {
			return sqlite3.BUSY
		}
		n.shared++
	case vfs.LOCK_RESERVED:
		if n.reserved {
			return sqlite3.BUSY
		}
		n.reserved, f.reserved = true, true
	case vfs.LOCK_EXCLUSIVE:
		if !f.pending {
			if n.pending {
				return sqlite3.BUSY
			}
			n.pending, f.pending = true, true
			f.lock = vfs.LOCK_PENDING
		}
		if n.shared > 1 {
			return sqlite3.BUSY
		}
	default:
		return sqlite3.IOERR_LOCK
	}
	f.lock = lock
	return nil
}

// Unlock lowers the handle's lock to lock. On a dead handle it only
// records the level: the cut dropped the locks.
func (f *file) Unlock(lock vfs.LockLevel) error {
	if f.lock <= lock {
		return nil
	}
	if err := f.enter(); err != nil {
		f.lock, f.reserved, f.pending = lock, false, false
		return nil
	}
	defer f.exit()
	f.unlock(lock)
	return nil
}

// unlock lowers the lock; fs.mu is held for reading.
func (f *file) unlock(lock vfs.LockLevel) {
	if f.lock <= lock {
		return
	}
	n := f.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if f.reserved && lock < vfs.LOCK_RESERVED {
		n.reserved, f.reserved = false, false
	}
	if f.pending && lock < vfs.LOCK_PENDING {
		n.pending, f.pending = false, false
	}
	if lock < vfs.LOCK_SHARED && f.lock >= vfs.LOCK_SHARED {
		n.shared--
	}
	f.lock = lock
}

func (f *file) CheckReservedLock() (bool, error) {
	if err := f.enter(); err != nil {
		return false, err
	}
	defer f.exit()
	if f.lock >= vfs.LOCK_RESERVED {
		return true, nil
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return f.n.reserved, nil
}

func (f *file) LockState() vfs.LockLevel { return f.lock }

// SectorSize is what the OS VFS reports; cuts tear at SectorSize (512).
func (f *file) SectorSize() int { return 4096 }

// DeviceCharacteristics are the OS VFS's on Linux, so SQLite takes the
// same code paths as in production.
func (f *file) DeviceCharacteristics() vfs.DeviceCharacteristic {
	c := vfs.IOCAP_SUBPAGE_READ
	if f.psow {
		c |= vfs.IOCAP_POWERSAFE_OVERWRITE
	}
	return c
}

func (f *file) PowersafeOverwrite() bool        { return f.psow }
func (f *file) SetPowersafeOverwrite(psow bool) { f.psow = psow }

// HasMoved reports whether the file lost its name (deleted, or replaced by
// a cut).
func (f *file) HasMoved() (bool, error) {
	if f.name == "" {
		return false, nil
	}
	if err := f.enter(); err != nil {
		return false, err
	}
	defer f.exit()
	return f.fs.moved(f.name, f.n), nil
}
