package faultfs

import (
	"fmt"

	"github.com/ncruces/go-sqlite3/vfs"
)

// Syncer performs the store's coordinator syncs on an FS (it implements
// store.Syncer). A Syncer belongs to the power-on period it was made in:
// after a cut every call fails, so make a new one for each store.
type Syncer struct {
	fs   *FS
	gen  uint64
	lies bool
}

// Syncer returns the FS's syncer for the current power-on period: SyncFile
// syncs one file, SyncVolume every file, SyncDir nothing (directory entries
// are durable at once).
func (fs *FS) Syncer() *Syncer {
	fs.mu.RLock()
	defer fs.mu.RUnlock()
	return &Syncer{fs: fs, gen: fs.gen}
}

// LyingSyncer returns a syncer that reports success without making
// anything durable: a negative control, which a power-loss test must catch
// losing acknowledged writes. Like every I/O, its calls fail after a cut.
func (fs *FS) LyingSyncer() *Syncer {
	s := fs.Syncer()
	s.lies = true
	return s
}

// enter takes the FS lock for reading if no cut happened since the Syncer
// was made; the caller then unlocks fs.mu.
func (s *Syncer) enter() error {
	s.fs.mu.RLock()
	if s.gen != s.fs.gen {
		s.fs.mu.RUnlock()
		return ErrPowerCut
	}
	return nil
}

// SyncFile makes every byte written to f durable, whichever handle wrote
// it. f must be a file of this FS, possibly wrapped (vfs.FileUnwrap).
func (s *Syncer) SyncFile(f vfs.File) error {
	h, err := s.unwrap(f)
	if err != nil {
		return err
	}
	s.fs.delaySync()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.fs.mu.RUnlock()
	if h.gen != s.gen {
		return ErrPowerCut // a handle from another power-on period
	}
	if !s.lies {
		h.n.mu.Lock()
		h.n.sync()
		h.n.mu.Unlock()
		s.fs.countSyncs(1)
	}
	return nil
}

func (s *Syncer) unwrap(f vfs.File) (*file, error) {
	for {
		switch t := f.(type) {
		case *file:
			if t.fs != s.fs {
				return nil, fmt.Errorf("faultfs: SyncFile of a file of another FS")
			}
			return t, nil
		case vfs.FileUnwrap:
			f = t.Unwrap()
		default:
			return nil, fmt.Errorf("faultfs: SyncFile of a %T, not a faultfs file", f)
		}
	}
}

// SyncVolume makes every file durable (syncfs).
func (s *Syncer) SyncVolume() error {
	s.fs.delaySync()
	if err := s.enter(); err != nil {
		return err
	}
	defer s.fs.mu.RUnlock()
	if !s.lies {
		s.fs.syncAll()
	}
	return nil
}

// SyncDir does nothing: directory entries are durable at once. It fails
// after a cut.
func (s *Syncer) SyncDir(path string) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.fs.mu.RUnlock()
	return nil
}
