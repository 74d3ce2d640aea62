// Package faultfs is an in-memory SQLite VFS that simulates power loss, for
// the store's durability tests.
//
// # Model
//
// Every file is held in memory as two images: its bytes as of its last sync
// (the durable image) and its current bytes (what reads see), plus the log
// of writes and truncates made since that sync. Syncing a file (vfs.File's
// Sync on any handle of it, or Syncer.SyncFile) makes its current bytes and
// size durable, whichever handle wrote them: Linux's fdatasync works on the
// inode, not on one descriptor. Syncer.SyncVolume syncs every file (syncfs).
//
// Directory entries are durable at once: a file created or deleted stays
// created or deleted across a cut, and Syncer.SyncDir is a no-op (it only
// fails while the power is off). SQLite's own directory syncs are not
// modelled either.
//
// A power cut (FS.Cut) freezes the file system under one lock, then turns
// each file into its durable image plus a random subset of its unsynced
// writes, decided per write and per 512-byte sector (kept or dropped 50/50,
// in log order): unsynced writes can be lost, reordered or torn at sector
// boundaries, but bytes a write did not cover are never changed (SQLite's
// powersafe-overwrite assumption, which the OS VFS also declares). Each
// unsynced truncate is applied or not, 50/50. Synced data is never lost.
// The cut kills every open handle: each later call on one fails with an I/O
// error (Close and Unlock succeed, doing nothing), and Syncers made before
// the cut fail too.
//
// After a cut the power stays off, so that goroutines of the process that
// "died" cannot reopen files: Open, Delete, Access and every Syncer call
// fail until Restart. Restart powers the file system on again with the
// post-cut images; a new store opened on the same FS (with a new Syncer from
// FS.Syncer) sees them, as a process restarted after a power loss would.
//
// Locking is in-process, one lock state per file (the states of SQLite's
// POSIX locks: shared count, reserved, pending, exclusive), so it supports
// locking_mode=EXCLUSIVE; a cut drops every lock with the handles that held
// them. There is no shared memory: a database in WAL mode must set
// locking_mode=EXCLUSIVE before journal_mode=WAL, which the store does.
// Files SQLite opens without a name (temporary files) live in memory, are
// never durable, and also die at a cut.
//
// SetSyncDelay makes every sync wait first, like a slow disk, so that more
// writes are unsynced at any moment; Unsynced lets a test aim a cut at a
// moment when there is something to tear.
//
// Not modelled: a disk that ignores flushes, failed syncs (EIO), a full
// disk, and anything on the real disk (the store's os.MkdirAll calls are
// harmless: this VFS never touches the real disk). Its handles are safe for
// concurrent use, so it cannot show races inside the OS VFS.
//
// Use:
//
//	fs := faultfs.New()
//	st, _ := store.Open(store.Config{Dir: dir, VFS: fs, Syncer: fs.Syncer()})
//	// ... run turns ...
//	fs.Cut(rng)  // power loss: handles die, the power stays off
//	st.Close()   // must return; its I/O fails
//	fs.Restart() // power on
//	st, _ = store.Open(store.Config{Dir: dir, VFS: fs, Syncer: fs.Syncer()})
package faultfs

import (
	"errors"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// SectorSize is the unit in which unsynced writes survive or are lost at a
// cut.
const SectorSize = 512

// ErrPowerCut is the error of every I/O on a handle that a cut killed, and
// of every call while the power is off. SQLite reports it as an I/O error.
var ErrPowerCut = errors.New("faultfs: power cut")

// FS is the simulated file system. It implements vfs.VFS; its zero value is
// not usable, call New.
type FS struct {
	// mu is held for reading by every operation and for writing by Cut and
	// Restart, so a cut sees no operation half done.
	mu  sync.RWMutex
	gen uint64 // guarded by mu; incremented by each cut; older handles are dead
	off bool   // guarded by mu; between Cut and Restart

	nsMu  sync.Mutex       // guards files; taken after mu
	files map[string]*node // guarded by nsMu; the named files

	syncDelay atomic.Int64 // nanoseconds every sync waits first

	statsMu sync.Mutex
	stats   Stats // guarded by statsMu
}

// Stats are counters of an FS since New.
type Stats struct {
	Opens int64 // opens of named files
	Syncs int64 // file syncs (each file of a volume sync counts)
	Cuts  int64
	CutStats
}

// CutStats describes what cuts did. The Unsynced and Dropped counts are in
// sector pieces: one write covering n sectors (in part or in full) counts n.
type CutStats struct {
	Files             int64 // named files at the cut
	UnsyncedSectors   int64 // sector pieces of unsynced writes
	DroppedSectors    int64 // of those, lost at the cut
	UnsyncedTruncates int64 // unsynced truncates and size changes
	DroppedTruncates  int64 // of those, lost at the cut
}

func (c *CutStats) add(d CutStats) {
	c.Files += d.Files
	c.UnsyncedSectors += d.UnsyncedSectors
	c.DroppedSectors += d.DroppedSectors
	c.UnsyncedTruncates += d.UnsyncedTruncates
	c.DroppedTruncates += d.DroppedTruncates
}

// New returns an empty, powered-on file system.
func New() *FS {
	return &FS{files: make(map[string]*node)}
}

// Stats returns the counters since New.
func (fs *FS) Stats() Stats {
	fs.statsMu.Lock()
	defer fs.statsMu.Unlock()
	return fs.stats
}

func (fs *FS) countSyncs(n int64) {
	fs.statsMu.Lock()
	fs.stats.Syncs += n
	fs.statsMu.Unlock()
}

// Cut simulates a power loss: every file becomes its durable image plus a
// random subset of its unsynced writes and truncates (see the package
// comment), every open handle and every Syncer dies, and the power stays
// off until Restart. rng decides what survives; files are visited in path
// order, so the same rng state and the same history give the same images.
func (fs *FS) Cut(rng *rand.Rand) CutStats {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.gen++
	fs.off = true
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	var cs CutStats
	for _, name := range slices.Sorted(maps.Keys(fs.files)) {
		n := fs.files[name]
		n.mu.Lock()
		img := n.survivor(rng, &cs)
		n.mu.Unlock()
		cs.Files++
		fs.files[name] = &node{durable: true, synced: img, cur: slices.Clone(img)}
	}
	fs.statsMu.Lock()
	fs.stats.Cuts++
	fs.stats.CutStats.add(cs)
	fs.statsMu.Unlock()
	return cs
}

// SetSyncDelay makes every sync (vfs.File.Sync and the Syncer's calls)
// wait d before it starts, as a slow disk would: writes made meanwhile stay
// unsynced, where a cut can tear them. The wait holds no lock, so a cut can
// come during it (the sync then fails).
func (fs *FS) SetSyncDelay(d time.Duration) { fs.syncDelay.Store(int64(d)) }

func (fs *FS) delaySync() {
	if d := time.Duration(fs.syncDelay.Load()); d > 0 {
		time.Sleep(d)
	}
}

// Unsynced returns the number of writes and truncates not yet synced, over
// every named file: a test can wait for a moment when a cut has something
// to tear.
func (fs *FS) Unsynced() int {
	fs.nsMu.Lock()
	nodes := slices.Collect(maps.Values(fs.files))
	fs.nsMu.Unlock()
	total := 0
	for _, n := range nodes {
		n.mu.Lock()
		total += len(n.log)
		n.mu.Unlock()
	}
	return total
}

// Restart powers the file system on after a cut. Handles and Syncers from
// before the cut stay dead.
func (fs *FS) Restart() {
	fs.mu.Lock()
	fs.off = false
	fs.mu.Unlock()
}

// enter takes mu for reading if the power is on.
func (fs *FS) enter() error {
	fs.mu.RLock()
	if fs.off {
		fs.mu.RUnlock()
		return ErrPowerCut
	}
	return nil
}

// Open implements vfs.VFS. A name of "" opens a new temporary file.
func (fs *FS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	if err := fs.enter(); err != nil {
		return nil, flags, err
	}
	defer fs.mu.RUnlock()
	f := &file{fs: fs, gen: fs.gen, name: name, flags: flags, psow: true}
	if name == "" {
		f.n = &node{}
		return f, flags, nil
	}
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	n := fs.files[name]
	switch {
	case n == nil && flags&vfs.OPEN_CREATE == 0:
		return nil, flags, sqlite3.CANTOPEN
	case n == nil:
		n = &node{durable: true}
		fs.files[name] = n
	case flags&vfs.OPEN_EXCLUSIVE != 0:
		return nil, flags, sqlite3.CANTOPEN
	}
	f.n = n
	fs.statsMu.Lock()
	fs.stats.Opens++
	fs.statsMu.Unlock()
	return f, flags, nil
}

// Delete implements vfs.VFS. The deletion is durable at once; open handles
// keep the file's data until they close.
func (fs *FS) Delete(name string, syncDir bool) error {
	if err := fs.enter(); err != nil {
		return err
	}
	defer fs.mu.RUnlock()
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	if _, ok := fs.files[name]; !ok {
		return sqlite3.IOERR_DELETE_NOENT
	}
	delete(fs.files, name)
	return nil
}

// Access implements vfs.VFS: a file exists, and is readable and writable,
// if it has a name in the file system.
func (fs *FS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	if err := fs.enter(); err != nil {
		return false, err
	}
	defer fs.mu.RUnlock()
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	_, ok := fs.files[name]
	return ok, nil
}

// FullPathname implements vfs.VFS.
func (fs *FS) FullPathname(name string) (string, error) {
	if filepath.IsAbs(name) {
		return filepath.Clean(name), nil
	}
	return filepath.Abs(name)
}

// Exists reports whether a file has a name in the file system. Unlike
// Access it works while the power is off.
func (fs *FS) Exists(name string) bool {
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	_, ok := fs.files[name]
	return ok
}

// Durable returns a copy of the file's durable image (its bytes as of its
// last sync), and whether the file exists.
func (fs *FS) Durable(name string) ([]byte, bool) {
	fs.nsMu.Lock()
	n := fs.files[name]
	fs.nsMu.Unlock()
	if n == nil {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.synced), true
}

// moved reports whether n no longer has the name it was opened under.
func (fs *FS) moved(name string, n *node) bool {
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	return fs.files[name] != n
}

// unlink removes name if it still names n (a delete-on-close file).
func (fs *FS) unlink(name string, n *node) {
	fs.nsMu.Lock()
	defer fs.nsMu.Unlock()
	if fs.files[name] == n {
		delete(fs.files, name)
	}
}

// syncAll makes every named file durable (the volume sync).
func (fs *FS) syncAll() {
	fs.nsMu.Lock()
	nodes := make([]*node, 0, len(fs.files))
	for _, n := range fs.files {
		nodes = append(nodes, n)
	}
	fs.nsMu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		n.sync()
		n.mu.Unlock()
	}
	fs.countSyncs(int64(len(nodes)))
}
