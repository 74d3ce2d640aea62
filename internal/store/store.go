// Package store is durable's storage engine: one SQLite database per object,
// with an SQL cursor API, a KV API on an internal table, turns as
// transactions, and coalesced durable commits.
//
// It knows nothing of actors or HTTP. Its user (the object runtime) owns each
// Object from one goroutine at a time and drives it with Begin, End and
// Commit:
//
//	o := st.Acquire("COUNTER", id)
//	defer o.Release()
//	if err := o.Begin(); err != nil { ... }        // a turn: a savepoint of the batch
//	o.Put("n", 1)
//	p, err := o.End(nil)                           // p: ready when the turn's writes are durable
//	o.Commit()                                     // when no more turns are queued: ends the batch
//	gate.Hold(p, sendResult)
//
// Durability is coalesced twice: the turns of one batch share one COMMIT
// (group commit), and a process-wide coordinator makes the COMMITs of many
// objects durable with one sync (docs/ARCHITECTURE.md states the invariant).
package store

import (
	"container/list"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/durable-go/durable/internal/errs"
	"github.com/ncruces/go-sqlite3/vfs"
)

// Defaults for Config's zero values.
const (
	DefaultMaxOpenDatabases = 5000
	DefaultMaxDatabaseSize  = 10_000_000_000
	DefaultMaxBatchTurns    = 256
	DefaultSyncfsThreshold  = 16
	DefaultCheckpointPages  = 1000
)

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// Dir is the data directory; databases live under Dir/objects.
	Dir string
	// MaxOpenDatabases bounds the open SQLite connections; beyond it the
	// least recently used idle ones are closed (and reopened on next use).
	MaxOpenDatabases int
	// MaxDatabaseSize bounds each object's database, in bytes.
	MaxDatabaseSize int64
	// MaxBatchTurns ends a batch (one COMMIT) after this many turns even if
	// more are queued.
	MaxBatchTurns int
	// SyncfsThreshold: when at least this many objects are waiting for a
	// sync, the coordinator makes them durable with one syncfs of the data
	// volume instead of one fdatasync each. A negative value never uses
	// syncfs.
	SyncfsThreshold int
	// Metrics receives the engine's counters (nil: a private set).
	Metrics *metrics.Store
	// Timings records on each batch's promise when it was committed and
	// synced (gate.Timing), for traces; off, nothing is measured.
	Timings bool
	// CheckpointPages: after a commit leaves the WAL longer than this many
	// pages, the object checkpoints it into the database file.
	CheckpointPages int
	// VFS is the file layer under SQLite (nil: the operating system's).
	// Tests pass a fault-injecting one.
	VFS vfs.VFS
	// Syncer performs the coordinator's syncs (nil: the operating system's).
	// It must match VFS.
	Syncer Syncer
	// Logger receives the store's logs (nil: slog.Default()).
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("store: Config.Dir is empty")
	}
	if c.MaxOpenDatabases <= 0 {
		c.MaxOpenDatabases = DefaultMaxOpenDatabases
	}
	if c.MaxDatabaseSize <= 0 {
		c.MaxDatabaseSize = DefaultMaxDatabaseSize
	}
	if c.MaxBatchTurns <= 0 {
		c.MaxBatchTurns = DefaultMaxBatchTurns
	}
	if c.SyncfsThreshold == 0 {
		c.SyncfsThreshold = DefaultSyncfsThreshold
	}
	if c.CheckpointPages <= 0 {
		c.CheckpointPages = DefaultCheckpointPages
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewStore()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store owns every object database under one data directory.
type Store struct {
	cfg     Config
	dir     string // absolute Dir/objects
	vfsName string // the name our wrapping VFS is registered under
	fs      *walTracker
	coord   *coordinator
	log     *slog.Logger
	// template is a new object's database file (see buildTemplate).
	template []byte
	// syncedDirs holds the directories this process fsynced (or covered
	// with syncfs): a file it did not create may sit in a directory whose
	// entry a dead process never synced.
	syncedDirs sync.Map // path → struct{}

	mu      sync.Mutex
	objects map[objectKey]*Object // guarded by mu; acquired or open objects
	lru     list.List             // guarded by mu; objects with an open connection, most recent first
	closed  bool                  // guarded by mu

	openConns atomic.Int64 // open SQLite connections

	closerWake chan struct{} // pokes the closer goroutine
	closerStop chan struct{}
	closerDone chan struct{}
}

type objectKey struct{ ns, id string }

var vfsSeq atomic.Int64

// Open opens the store at cfg.Dir, creating the directory if needed. It
// starts the sync coordinator; Close stops it.
func Open(cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	dir := filepath.Join(abs, "objects")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	base := cfg.VFS
	if base == nil {
		base = vfs.Find("")
	}
	template, err := buildTemplate(abs)
	if err != nil {
		return nil, fmt.Errorf("store: build the new-database template: %w", err)
	}
	syncer := cfg.Syncer
	if syncer == nil {
		syncer, err = newOSSyncer(dir)
		if err != nil {
			return nil, err
		}
	}
	st := &Store{
		cfg:      cfg,
		dir:      dir,
		vfsName:  fmt.Sprintf("durable-%d", vfsSeq.Add(1)),
		fs:       newWALTracker(base),
		log:      cfg.Logger,
		template: template,
		objects:  make(map[objectKey]*Object),
	}
	vfs.Register(st.vfsName, st.fs)
	st.coord = newCoordinator(syncer, cfg.SyncfsThreshold, cfg.Logger, cfg.Metrics)
	st.closerWake = make(chan struct{}, 1)
	st.closerStop = make(chan struct{})
	st.closerDone = make(chan struct{})
	go st.closeLoop()
	return st, nil
}

// ObjectsDir returns the directory holding every object's database.
func (st *Store) ObjectsDir() string { return st.dir }

// Path returns the database file of an object:
// Dir/objects/<namespace>/<id[0:2]>/<id>.sqlite.
func (st *Store) Path(ns, id string) string {
	shard := id
	if len(shard) > 2 {
		shard = shard[:2]
	}
	return filepath.Join(st.dir, ns, shard, id+".sqlite")
}

// DatabaseBytes returns the size on disk of an object's database and its
// WAL, and whether it has a database.
func (st *Store) DatabaseBytes(ns, id string) (int64, bool) {
	path := st.Path(ns, id)
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	n := fi.Size()
	if wal, err := os.Stat(path + "-wal"); err == nil {
		n += wal.Size()
	}
	return n, true
}

// Acquire returns the object's handle, creating nothing on disk. Each
// object has one handle at a time: callers that acquire it while it is
// held get the same one, and must use it from one goroutine at a time.
// Every Acquire needs a Release.
func (st *Store) Acquire(ns, id string) (*Object, error) {
	if err := checkName(ns, id); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, fmt.Errorf("store: acquire %s/%s: %w", ns, id, errs.ErrClosed)
	}
	k := objectKey{ns, id}
	o := st.objects[k]
	if o == nil {
		o = newObject(st, ns, id)
		st.objects[k] = o
	}
	o.refs++
	return o, nil
}

// AcquireNode returns the node-level database Dir/<name>.sqlite (the
// alarm index): an Object like any other, synced by the same coordinator,
// outside Dir/objects. name must be a valid ID name.
func (st *Store) AcquireNode(name string) (*Object, error) {
	if err := checkName("node", name); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return nil, fmt.Errorf("store: acquire %s: %w", name, errs.ErrClosed)
	}
	k := objectKey{"", name}
	o := st.objects[k]
	if o == nil {
		o = &Object{st: st, ns: "", id: name, path: filepath.Join(filepath.Dir(st.dir), name+".sqlite")}
		st.objects[k] = o
	}
	o.refs++
	return o, nil
}

// checkName keeps namespace and ID names safe as path elements.
func checkName(ns, id string) error {
	for _, s := range [...]string{ns, id} {
		if s == "" || len(s) > 128 || s == "." || s == ".." {
			return fmt.Errorf("store: invalid name %q", s)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("store: invalid name %q", s)
			}
		}
	}
	return nil
}

// Stats are counters of the store since Open.
type Stats struct {
	OpenDatabases int64 // open SQLite connections now
	Commits       int64 // COMMITs that wrote (batches handed to the coordinator)
	Turns         int64 // turns in those batches, failed and read-only turns included
	Rounds        int64 // coordinator rounds: one syncfs, or one pass of fdatasyncs
	FileSyncs     int64 // fdatasync calls
	VolumeSyncs   int64 // syncfs calls
	DirSyncs      int64 // directory fsyncs for new databases
	SyncErrors    int64
}

// Stats returns the store's counters.
func (st *Store) Stats() Stats {
	s := st.coord.stats()
	s.OpenDatabases = st.openConns.Load()
	return s
}

// touchLocked moves an open object to the front of the LRU list.
func (st *Store) touchLocked(o *Object) {
	if o.lruElem != nil {
		st.lru.MoveToFront(o.lruElem)
	}
}

// opened records o's new connection; the closer trims the LRU list if
// the store is over MaxOpenDatabases.
func (st *Store) opened(o *Object) {
	st.mu.Lock()
	o.lruElem = st.lru.PushFront(o)
	n := st.openConns.Add(1)
	st.mu.Unlock()
	if limit := st.hardLimit(); n > limit {
		// The closer is behind (a burst of new objects opens faster than
		// one closer checkpoints and closes): the opener closes some
		// itself, so the open databases (memory, file descriptors) stay
		// bounded.
		st.closeLRU(limit, 64)
	}
	st.trim()
}

// hardLimit is how far past MaxOpenDatabases the open databases may get
// while the closer catches up: 1/32 more, at least 8.
func (st *Store) hardLimit() int64 {
	m := int64(st.cfg.MaxOpenDatabases)
	return m + max(8, m/32)
}

// closeLRU closes least recently used idle connections while more than
// limit are open, looking at most at the scan least recently used ones
// (busy ones are skipped).
func (st *Store) closeLRU(limit int64, scan int) {
	st.mu.Lock()
	var victims []*Object
	for e := st.lru.Back(); e != nil && len(victims) < scan; e = e.Prev() {
		victims = append(victims, e.Value.(*Object))
	}
	st.mu.Unlock()
	for _, v := range victims {
		if st.openConns.Load() <= limit {
			return
		}
		v.closeIfIdle()
	}
}

// trim asks the closer goroutine to close least recently used idle
// connections while more than MaxOpenDatabases are open. Closing (a
// checkpoint and two syncs) happens off the path of the turn that opened a
// database.
func (st *Store) trim() {
	if st.openConns.Load() <= int64(st.cfg.MaxOpenDatabases) {
		return
	}
	select {
	case st.closerWake <- struct{}{}:
	default:
	}
}

// closerWorkers close connections in parallel: a close waits mostly on
// its syncs.
const closerWorkers = 4

// closeLoop is the closer goroutine. An object in use, in a batch or
// waiting for a sync is skipped: the limit is soft while every connection
// is busy, and the closer runs again when an object goes idle (Commit).
func (st *Store) closeLoop() {
	defer close(st.closerDone)
	for {
		select {
		case <-st.closerWake:
		case <-st.closerStop:
			return
		}
		excess := st.openConns.Load() - int64(st.cfg.MaxOpenDatabases)
		if excess <= 0 {
			continue
		}
		st.mu.Lock()
		var victims []*Object
		for e := st.lru.Back(); e != nil && len(victims) < int(excess)+8; e = e.Prev() {
			victims = append(victims, e.Value.(*Object))
		}
		st.mu.Unlock()
		work := make(chan *Object)
		var wg sync.WaitGroup
		for range min(closerWorkers, len(victims)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v := range work {
					v.closeIfIdle()
				}
			}()
		}
		for _, v := range victims {
			if st.openConns.Load() <= int64(st.cfg.MaxOpenDatabases) {
				break
			}
			work <- v
		}
		close(work)
		wg.Wait()
	}
}

// closedConn removes o from the LRU list after its connection closed, and
// forgets o if nobody holds it.
func (st *Store) closedConn(o *Object) {
	st.mu.Lock()
	if o.lruElem != nil {
		st.lru.Remove(o.lruElem)
		o.lruElem = nil
		st.openConns.Add(-1)
	}
	st.forgetLocked(o)
	st.mu.Unlock()
}

func (st *Store) forgetLocked(o *Object) {
	if o.refs == 0 && o.lruElem == nil {
		k := objectKey{o.ns, o.id}
		if st.objects[k] == o {
			delete(st.objects, k)
		}
	}
}

// release drops one reference to o.
func (st *Store) release(o *Object) {
	st.mu.Lock()
	if o.refs > 0 {
		o.refs--
	}
	st.forgetLocked(o)
	st.mu.Unlock()
}

// Close closes every database and stops the coordinator. Objects still in
// a batch have their batch rolled back and its promise failed with
// ErrClosed; committed batches are made durable first. Close is safe to
// call twice.
func (st *Store) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	close(st.closerStop)
	var open []*Object
	for _, o := range st.objects {
		open = append(open, o)
	}
	st.mu.Unlock()
	<-st.closerDone
	var errsOut []error
	for _, o := range open {
		if err := o.shutdown(); err != nil {
			errsOut = append(errsOut, err)
		}
	}
	st.coord.close()
	vfs.Unregister(st.vfsName)
	return errors.Join(errsOut...)
}

// unsyncedDirs returns dir and its parents up to the data directory that
// this process has not synced yet.
func (st *Store) unsyncedDirs(dir string) []string {
	root := filepath.Dir(st.dir) // Dir, holding objects/
	var out []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, ok := st.syncedDirs.Load(d); !ok {
			out = append(out, d)
		}
		if d == root || filepath.Dir(d) == d {
			return out
		}
	}
}

// dirsSynced records directories a successful sync round covered.
func (st *Store) dirsSynced(dirs []string) {
	for _, d := range dirs {
		st.syncedDirs.Store(d, struct{}{})
	}
}
