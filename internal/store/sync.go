package store

import (
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/ncruces/go-sqlite3/vfs"
	"golang.org/x/sys/unix"
)

// Syncer performs the sync coordinator's syncs. It is the seam through which
// a power-loss simulation sees every sync; the operating system's version
// calls fdatasync, syncfs and fsync.
type Syncer interface {
	// SyncFile makes every byte written to f durable, whichever handle
	// wrote it (fdatasync: Linux syncs the inode).
	SyncFile(f vfs.File) error
	// SyncVolume makes every file of the data volume durable (syncfs),
	// directory entries included.
	SyncVolume() error
	// SyncDir makes a directory's entries durable (fsync of the directory).
	SyncDir(path string) error
}

type osSyncer struct {
	root *os.File // Dir/objects, for syncfs
}

func newOSSyncer(dir string) (*osSyncer, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return &osSyncer{root: f}, nil
}

func (s *osSyncer) SyncFile(f vfs.File) error {
	return f.Sync(vfs.SYNC_NORMAL | vfs.SYNC_DATAONLY)
}

func (s *osSyncer) SyncVolume() error {
	for {
		err := unix.Syncfs(int(s.root.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func (s *osSyncer) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commitRec is one committed batch waiting to be made durable.
type commitRec struct {
	obj   *Object
	wal   *walFile // the live WAL the batch was committed to
	dirs  []string // directories to fsync first (a new database's)
	p     *gate.Promise
	turns int
}

// coordinator makes committed batches durable: it takes every batch
// committed so far, syncs (one fdatasync per dirty WAL, or one syncfs of the
// volume when many are dirty), then resolves their promises. Batches
// committed while a sync runs wait for the next round, so a round's cost is
// shared by every batch that arrived during the previous one.
//
// The invariant (docs/ARCHITECTURE.md): a promise resolves with nil only
// after a sync of its object's live WAL that started after the batch's
// COMMIT returned has itself returned success.
type coordinator struct {
	syncer    Syncer
	threshold int
	log       *slog.Logger
	m         *metrics.Store

	mu        sync.Mutex
	queue     []commitRec   // guarded by mu
	closed    bool          // guarded by mu
	st        Stats         // guarded by mu
	roundDone chan struct{} // guarded by mu; closed when the running round ends; nil when idle

	wake chan struct{}
	done chan struct{}
}

func newCoordinator(s Syncer, threshold int, log *slog.Logger, m *metrics.Store) *coordinator {
	c := &coordinator{
		syncer:    s,
		threshold: threshold,
		log:       log,
		m:         m,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	go c.run()
	return c
}

// submit queues a committed batch. After close it fails the promise.
func (c *coordinator) submit(r commitRec) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		r.p.Resolve(fmt.Errorf("store: sync after close: %w", errs.ErrClosed))
		return
	}
	c.queue = append(c.queue, r)
	c.st.Commits++
	c.st.Turns += int64(r.turns)
	c.mu.Unlock()
	c.m.Commits.Inc()
	c.m.TurnsPerBatch.Observe(int64(r.turns))
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// busy returns nil when no round is running (a batch committed now is
// synced at once), or a channel closed when the running round ends (a batch
// committed before then waits for the next round anyway).
func (c *coordinator) busy() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roundDone == nil {
		return nil
	}
	return c.roundDone
}

func (c *coordinator) stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// close syncs what is queued, then stops the coordinator.
func (c *coordinator) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
}

func (c *coordinator) run() {
	defer close(c.done)
	var batch []commitRec
	for range c.wake {
		for {
			c.mu.Lock()
			batch, c.queue = c.queue, batch[:0]
			closed := c.closed
			var done chan struct{}
			if len(batch) > 0 {
				done = make(chan struct{})
				c.roundDone = done
			}
			c.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			c.round(batch)
			clear(batch)
			c.mu.Lock()
			c.roundDone = nil
			c.mu.Unlock()
			close(done)
		}
	}
}

// objSync is one object's share of a round.
type objSync struct {
	wal  *walFile
	dirs []string
	err  error
}

// round makes one set of batches durable and resolves their promises.
func (c *coordinator) round(batch []commitRec) {
	byObj := make(map[*Object]*objSync, len(batch))
	order := make([]*Object, 0, len(batch))
	for i := range batch {
		r := &batch[i]
		s := byObj[r.obj]
		if s == nil {
			s = &objSync{}
			byObj[r.obj] = s
			order = append(order, r.obj)
		}
		// Batches of one object all went to the same live WAL unless the
		// connection was reopened in between, which only happens after
		// every earlier promise resolved; the latest WAL is the one to sync.
		s.wal = r.wal
		s.dirs = append(s.dirs, r.dirs...)
	}
	var files, volumes, dirSyncs int64
	start := time.Now()
	if c.threshold > 0 && len(order) >= c.threshold {
		// One syncfs covers every WAL and directory of the volume.
		volumes++
		if err := c.syncer.SyncVolume(); err != nil {
			for _, s := range byObj {
				s.err = fmt.Errorf("syncfs: %w", err)
			}
		}
	} else {
		files, dirSyncs = c.syncEach(order, byObj)
	}
	elapsed := time.Since(start)
	c.m.SyncSeconds.ObserveDuration(elapsed)
	c.m.BatchesPerSync.Observe(int64(len(batch)))
	turns := 0
	for i := range batch {
		turns += batch[i].turns
	}
	c.m.TurnsPerSync.Observe(int64(turns))

	var failed int64
	var firstFailed *Object
	var firstErr error
	for i := range batch {
		r := &batch[i]
		err := byObj[r.obj].err
		if err == nil {
			err = r.obj.syncFailure()
		}
		if err != nil {
			failed++
			if firstFailed == nil {
				firstFailed, firstErr = r.obj, err
			}
			r.obj.failSync(err)
			r.p.Resolve(fmt.Errorf("store: %s/%s: sync failed: %v: %w", r.obj.ns, r.obj.id, err, errs.ErrObjectReset))
			continue
		}
		r.obj.st.dirsSynced(r.dirs)
		if r.obj.st.cfg.Timings {
			r.p.ResolveSynced(nil, start.UnixNano(), start.Add(elapsed).UnixNano(), len(batch))
			continue
		}
		r.p.Resolve(nil)
	}
	c.mu.Lock()
	c.st.Rounds++
	c.st.FileSyncs += files
	c.st.VolumeSyncs += volumes
	c.st.DirSyncs += dirSyncs
	c.st.SyncErrors += failed
	c.mu.Unlock()
	c.m.SyncErrors.Add(uint64(failed))
	if failed > 0 {
		c.log.Error("store: sync failed; the objects reset and reopen from disk",
			"namespace", firstFailed.ns, "id", firstFailed.id, "batches", failed, "err", firstErr, "elapsed", elapsed)
	}
}

// dirSync is one directory's fsync in a round.
type dirSync struct {
	mu  sync.Mutex // held while the fsync runs
	err error
}

// maxParallelSyncs bounds the fdatasyncs one round runs at once.
const maxParallelSyncs = 16

// syncEach fdatasyncs each object's WAL (and fsyncs new directories), up to
// maxParallelSyncs at a time.
func (c *coordinator) syncEach(order []*Object, byObj map[*Object]*objSync) (files, dirs int64) {
	// A directory several objects of the round wait for is synced once;
	// the others wait for that sync.
	var dmu sync.Mutex
	dirDone := map[string]*dirSync{}
	syncDir := func(d string) error {
		dmu.Lock()
		ds := dirDone[d]
		if ds == nil {
			ds = &dirSync{}
			dirDone[d] = ds
			ds.mu.Lock()
			dmu.Unlock()
			ds.err = c.syncer.SyncDir(d)
			ds.mu.Unlock()
			return ds.err
		}
		dmu.Unlock()
		ds.mu.Lock() // held by the syncing goroutine until it is done
		defer ds.mu.Unlock()
		return ds.err
	}
	one := func(s *objSync) {
		for _, d := range s.dirs {
			if err := syncDir(d); err != nil {
				s.err = fmt.Errorf("fsync directory %s: %w", d, err)
				return
			}
		}
		if s.wal == nil {
			s.err = errWALClosed
			return
		}
		if err := s.wal.syncData(c.syncer); err != nil {
			s.err = fmt.Errorf("fdatasync %s: %w", s.wal.path, err)
		}
	}
	for _, o := range order {
		files++
		dirs += int64(len(byObj[o].dirs))
	}
	if len(order) == 1 {
		one(byObj[order[0]])
		return files, dirs
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelSyncs)
	for _, o := range order {
		s := byObj[o]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			one(s)
			<-sem
		}()
	}
	wg.Wait()
	return files, dirs
}
