package store

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ncruces/go-sqlite3/vfs"
)

// walTracker is the VFS SQLite runs on: it passes everything to a base VFS
// (the operating system's, or a test's fault-injecting one) and keeps a
// handle on each database's live -wal file, so the sync coordinator can make
// exactly that inode durable (durability-notes failure mode 3: never sync a
// stale WAL).
type walTracker struct {
	base vfs.VFS

	mu   sync.Mutex
	wals map[string]*walFile // guarded by mu; open WAL files by path
}

func newWALTracker(base vfs.VFS) *walTracker {
	return &walTracker{base: base, wals: make(map[string]*walFile)}
}

// wal returns the open WAL file at path, or nil.
func (t *walTracker) wal(path string) *walFile {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.wals[path]
}

func (t *walTracker) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, out, err := t.base.Open(name, flags)
	return t.track(name, flags, f, out, err)
}

func (t *walTracker) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	var f vfs.File
	var out vfs.OpenFlag
	var err error
	if b, ok := t.base.(vfs.VFSFilename); ok {
		f, out, err = b.OpenFilename(name, flags)
	} else {
		f, out, err = t.base.Open(name.String(), flags)
	}
	return t.track(name.String(), flags, f, out, err)
}

func (t *walTracker) track(name string, flags vfs.OpenFlag, f vfs.File, out vfs.OpenFlag, err error) (vfs.File, vfs.OpenFlag, error) {
	if err != nil || flags&vfs.OPEN_WAL == 0 {
		return f, out, err
	}
	w := &walFile{File: f, t: t, path: name}
	t.mu.Lock()
	t.wals[name] = w
	t.mu.Unlock()
	return w, out, nil
}

func (t *walTracker) Delete(name string, syncDir bool) error {
	return t.base.Delete(name, syncDir)
}

func (t *walTracker) Access(name string, flags vfs.AccessFlag) (bool, error) {
	return t.base.Access(name, flags)
}

func (t *walTracker) FullPathname(name string) (string, error) {
	return t.base.FullPathname(name)
}

// errWALClosed: the coordinator was asked to sync a WAL whose connection
// closed it. It cannot vouch for the data, so the object fails.
var errWALClosed = errors.New("store: WAL file closed before its sync")

// walFile is a tracked -wal file. Sync may be called by the coordinator
// while the object's goroutine writes: both are safe on an open file, and
// the object never closes its connection while a sync it asked for is in
// flight (Object.closeConn waits for its promises first).
type walFile struct {
	vfs.File
	t    *walTracker
	path string

	mu     sync.Mutex  // held by a sync in flight (ours or SQLite's); Close waits for it
	closed atomic.Bool // set under mu
}

// syncData makes the file's written bytes durable: the coordinator's
// fdatasync of the live WAL.
func (w *walFile) syncData(s Syncer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() {
		return errWALClosed
	}
	return s.SyncFile(w.File)
}

// Sync is SQLite's own sync of the WAL (its header at a restart, the WAL
// before a checkpoint). It is serialized with the coordinator's syncData:
// the base file's first sync also syncs the directory of a new WAL, and
// the coordinator must not acknowledge anything while that is in flight.
func (w *walFile) Sync(flags vfs.SyncFlag) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.File.Sync(flags)
}

func (w *walFile) Close() error {
	w.mu.Lock()
	w.closed.Store(true)
	w.mu.Unlock()
	w.t.mu.Lock()
	if w.t.wals[w.path] == w {
		delete(w.t.wals, w.path)
	}
	w.t.mu.Unlock()
	return w.File.Close()
}

func (w *walFile) isClosed() bool { return w.closed.Load() }

// Unwrap gives the base file.
func (w *walFile) Unwrap() vfs.File { return w.File }

// The optional abilities SQLite asks of a WAL file are passed through.

func (w *walFile) SizeHint(size int64) error {
	if f, ok := w.File.(vfs.FileSizeHint); ok {
		return f.SizeHint(size)
	}
	return nil
}

func (w *walFile) HasMoved() (bool, error) {
	if f, ok := w.File.(vfs.FileHasMoved); ok {
		return f.HasMoved()
	}
	return false, nil
}

func (w *walFile) PowersafeOverwrite() bool {
	if f, ok := w.File.(vfs.FilePowersafeOverwrite); ok {
		return f.PowersafeOverwrite()
	}
	return false
}

func (w *walFile) SetPowersafeOverwrite(psow bool) {
	if f, ok := w.File.(vfs.FilePowersafeOverwrite); ok {
		f.SetPowersafeOverwrite(psow)
	}
}
