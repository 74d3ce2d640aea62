package store

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
)

// Object is one object's storage. Its methods must be called from one
// goroutine at a time (the object's owner); the store's LRU closer and Close
// coordinate with the owner through mu.
//
// Turns: Begin starts one, storage calls run inside it, End finishes it
// (rolled back if it failed) and returns the promise its outputs wait on.
// Turns accumulate in a batch (one SQLite transaction, each turn a
// savepoint) until Commit, which the owner calls when no more turns are
// queued; the batch's promise resolves when the coordinator has synced it.
type Object struct {
	st           *Store
	ns, id, path string

	// Guarded by st.mu.
	refs    int
	lruElem *list.Element

	mu      sync.Mutex
	conn    *dbConn       // guarded by mu (open/close); used by the owner while busy
	busy    bool          // guarded by mu; in a turn or a batch: the LRU may not close
	pending *gate.Promise // guarded by mu; the last batch handed to the coordinator

	failMu  sync.Mutex
	syncErr error // guarded by failMu; a failed sync or commit, until the owner resets

	// Owner-only state.
	statted    bool
	exists     bool          // the database file exists
	inTurn     bool          // between Begin and End
	inBatch    bool          // a batch is open (its promise exists)
	txnOpen    bool          // BEGIN ran on conn for this batch
	spOpen     bool          // the turn's savepoint is open
	batch      *gate.Promise // the open batch's promise
	batchTurns int
	userWrote  bool      // a write statement or KV write ran in this batch
	alarmDel   bool      // the alarm record was deleted since TakeAlarmDeleted
	createdNow bool      // the database file was created in this batch
	newDirs    []string  // directories to fsync before the first sync of a new file
	turnSeq    uint64    // increments at each Begin; cursors remember theirs
	cursors    []*Cursor // opened in this turn; closed at End
	unread     []*Cursor // cursors with an error, to check at End
	turnFailed error     // the storage failed under this turn; it must fail
	txDepth    int       // open Transaction calls
	txConns    []*dbConn // the connection each open Transaction began on
	trusted    bool      // the runtime's own statement is being prepared or run
	// readOnlyQuery: an operator's read-only query is being prepared (the
	// authorizer also refuses pragmas that would change something).
	readOnlyQuery bool
	authErr       error           // why the authorizer refused the last statement
	walPages      int             // WAL length after the last commit, from the WAL hook
	interrupt     context.Context // SQLite calls fail once it is done (SetInterrupt)
	// Rows read and written by user statements and KV calls since the last
	// TakeRows (see Cursor for how a statement's rows are counted).
	rowsRead, rowsWritten int64
}

// TakeRows returns the rows read and written since the last call, and
// starts counting again. Owner only.
func (o *Object) TakeRows() (read, written int64) {
	read, written = o.rowsRead, o.rowsWritten
	o.rowsRead, o.rowsWritten = 0, 0
	return read, written
}

func newObject(st *Store, ns, id string) *Object {
	return &Object{st: st, ns: ns, id: id, path: st.Path(ns, id)}
}

// Namespace and ID name the object.
func (o *Object) Namespace() string { return o.ns }

// ID returns the object's ID string.
func (o *Object) ID() string { return o.id }

// SetInterrupt makes SQLite calls fail (a running statement at its next
// check, within ~1,000 VM steps) once ctx is done. The runtime cancels it to
// fence a stale instance, and sets a fresh one before the next turn.
func (o *Object) SetInterrupt(ctx context.Context) {
	o.mu.Lock() // the LRU closer may be closing the connection
	defer o.mu.Unlock()
	o.interrupt = ctx
	if o.conn != nil {
		o.conn.c.SetInterrupt(ctx)
	}
}

// InTurn reports whether a turn (a storage segment) is open.
func (o *Object) InTurn() bool { return o.inTurn }

// InTransaction reports whether a Transaction (TxBegin) is open in the turn.
func (o *Object) InTransaction() bool { return o.txDepth > 0 }

// Wrote reports whether the open batch holds a write (a user write
// statement, a KV write or an alarm change), rolled back or not.
func (o *Object) Wrote() bool { return o.inBatch && o.userWrote }

// Release drops the handle taken by Acquire. The object's connection may
// stay open (least recently used connections close first).
func (o *Object) Release() { o.st.release(o) }

var (
	// ErrNotInTurn: the storage was used when no turn of the object was in
	// progress (after the turn ended, or while it waits on an outgoing call).
	ErrNotInTurn = errors.New("store: storage used outside the object's turn (after the turn ended, or while it waits on an outgoing call)")
	errInTurn    = errors.New("store: a turn is already running")
	errNotInTurn = ErrNotInTurn
)

// Begin starts a turn. If a sync of this object failed since the last turn,
// Begin closes the connection (it reopens from disk on next use) and
// returns an error wrapping ErrObjectReset, once: the caller should discard
// any in-memory state built on the lost writes.
func (o *Object) Begin() error {
	if o.inTurn {
		return errInTurn
	}
	if err := o.syncFailure(); err != nil && !o.inBatch {
		o.reset()
		return err
	}
	if !o.busy {
		o.mu.Lock()
		o.busy = true
		o.mu.Unlock()
	}
	if o.conn != nil {
		o.st.mu.Lock()
		o.st.touchLocked(o)
		o.st.mu.Unlock()
	}
	o.inTurn = true
	o.turnSeq++
	if !o.inBatch {
		o.inBatch = true
		o.batch = gate.New()
		o.batchTurns = 0
		o.userWrote = false
	}
	return nil
}

// ensure makes the turn ready for a storage call: the connection open, the
// batch transaction begun and the turn's savepoint taken.
func (o *Object) ensure() error {
	if !o.inTurn {
		return errNotInTurn
	}
	if o.turnFailed != nil {
		return o.turnFailed
	}
	if o.conn == nil {
		if err := o.open(); err != nil {
			return err
		}
	}
	if o.txnOpen && o.conn.c.GetAutocommit() {
		// The batch transaction ended under us: never let a write of
		// this turn autocommit on its own.
		return o.fatal(o.batch, errors.New("store: the batch transaction ended unexpectedly"))
	}
	if !o.txnOpen {
		if err := o.conn.run(o, o.conn.begin); err != nil {
			return o.fatal(o.batch, fmt.Errorf("begin: %w", err))
		}
		o.txnOpen = true
	}
	if !o.spOpen {
		if err := o.conn.run(o, o.conn.savepoint); err != nil {
			return o.fatal(o.batch, fmt.Errorf("savepoint: %w", err))
		}
		o.spOpen = true
	}
	return nil
}

// End finishes the turn. turnErr is the turn's own outcome; if it is nil but
// an Exec error went unread, that error becomes the turn's. A failed turn's
// writes since its last durability point are rolled back. End returns the
// promise the turn's outputs must wait on (it covers every write the turn
// could have seen), and the turn's final error.
func (o *Object) End(turnErr error) (*gate.Promise, error) {
	if !o.inTurn {
		return gate.Resolved(errNotInTurn), errNotInTurn
	}
	// The turn's unread Exec errors end with it, whether or not they are
	// its outcome: a failed turn's would fail the next one (found in
	// review).
	if uerr := o.unreadError(); turnErr == nil {
		turnErr = uerr
	}
	o.closeCursors()
	if o.spOpen && o.turnFailed == nil {
		var err error
		if turnErr != nil {
			err = o.conn.run(o, o.conn.rollbackTo)
		}
		if err == nil {
			err = o.conn.run(o, o.conn.release)
		}
		o.spOpen = false
		if err != nil {
			o.fatal(o.batch, fmt.Errorf("end turn: %w", err))
		}
	}
	o.txDepth = 0
	clear(o.txConns)
	o.txConns = o.txConns[:0]
	o.inTurn = false
	p := o.batch
	if err := o.turnFailed; err != nil {
		// The storage failed under this turn: its batch is lost and the
		// next turn starts a new one on a reopened database.
		o.turnFailed = nil
		o.inBatch, o.batch = false, nil
		o.mu.Lock()
		o.busy = false
		o.mu.Unlock()
		return p, err
	}
	o.batchTurns++
	if o.batchTurns >= o.st.cfg.MaxBatchTurns {
		o.Commit()
	}
	return p, turnErr
}

// Commit ends the open batch: its writes are committed and handed to the
// sync coordinator, and its promise resolves when they are durable. A batch
// that wrote nothing resolves with the batch before it. The owner calls
// Commit when no more turns are queued; End calls it when the batch is
// full. Errors go to the batch's promise (and reset the object).
func (o *Object) Commit() {
	if o.inTurn || !o.inBatch {
		return
	}
	p := o.batch
	o.inBatch, o.batch = false, nil
	turns := o.batchTurns
	o.commitTxn(p, turns)
	o.mu.Lock()
	o.busy = false
	o.mu.Unlock()
	o.st.trim() // an over-full store may close idle connections now
}

// commitTxn commits the batch transaction (if one is open) and settles p.
// A failed COMMIT resets the object (see fatal) and is returned.
func (o *Object) commitTxn(p *gate.Promise, turns int) error {
	if !o.txnOpen {
		o.follow(p)
		return nil
	}
	if o.createdNow && !o.userWrote {
		// A read-only visit to a new object leaves nothing on disk.
		o.conn.run(o, o.conn.rollback)
		o.txnOpen = false
		o.removeFiles()
		o.follow(p)
		return nil
	}
	wrote := o.conn.wrote()
	var t0 time.Time
	if o.st.cfg.Timings {
		t0 = time.Now()
	}
	if err := o.conn.run(o, o.conn.commit); err != nil {
		o.txnOpen = false
		return o.fatal(p, fmt.Errorf("commit: %w", err))
	}
	if o.st.cfg.Timings && wrote {
		p.SetCommitted(t0.UnixNano(), time.Now().UnixNano(), turns)
	}
	o.txnOpen = false
	if !wrote {
		o.follow(p)
		return nil
	}
	rec := commitRec{obj: o, wal: o.conn.liveWAL(o), p: p, turns: turns, dirs: o.newDirs}
	o.newDirs = nil
	o.createdNow = false
	o.mu.Lock()
	o.pending = p
	o.mu.Unlock()
	o.st.coord.submit(rec)
	if o.walPages >= o.st.cfg.CheckpointPages {
		o.checkpoint()
	}
	return nil
}

// CommitWait tells the owner, when its queue is empty, whether to Commit
// now. It returns nil when the sync coordinator is idle: commit now and the
// batch is synced at once. Otherwise it returns a channel that closes when
// the coordinator's running round ends; a batch committed before then would
// wait for the next round anyway, so the owner should keep the batch open
// for more turns and Commit when the channel closes (or the batch fills).
// Fewer, larger commits cost less CPU per turn.
func (o *Object) CommitWait() <-chan struct{} {
	if !o.inBatch || !o.txnOpen {
		return nil
	}
	return o.st.coord.busy()
}

// follow settles a batch that wrote nothing: its turns may still have read
// the previous batch's writes, so it resolves when that one does.
func (o *Object) follow(p *gate.Promise) {
	o.mu.Lock()
	prev := o.pending
	o.mu.Unlock()
	if err := o.syncFailure(); err != nil {
		p.Resolve(err)
		return
	}
	if prev == nil {
		p.Resolve(nil)
		return
	}
	if o.st.cfg.Timings {
		p.FollowTiming(prev)
		return
	}
	p.Follow(prev)
}

// DurabilityPoint commits the turn's writes so far as their own batch and
// returns the promise that they are durable; the turn goes on in a new
// batch, and a later failure rolls back only what follows. It is refused
// inside Transaction.
func (o *Object) DurabilityPoint() (*gate.Promise, error) {
	if !o.inTurn {
		return nil, errNotInTurn
	}
	if o.txDepth > 0 {
		return nil, errors.New("store: a durability point (an outgoing call or a flush) cannot happen inside Storage.Transaction")
	}
	p := o.batch
	if o.spOpen {
		o.spOpen = false
		if err := o.conn.run(o, o.conn.release); err != nil {
			return p, o.fatal(p, fmt.Errorf("release: %w", err))
		}
	}
	if err := o.commitTxn(p, o.batchTurns+1); err != nil {
		return p, err
	}
	o.batch = gate.New()
	o.batchTurns = 0
	o.userWrote = false
	return p, nil
}

// syncFailure returns the error of a failed sync or commit not yet handled
// by the owner.
func (o *Object) syncFailure() error {
	o.failMu.Lock()
	defer o.failMu.Unlock()
	return o.syncErr
}

// failSync records a failed sync (from the coordinator).
func (o *Object) failSync(err error) {
	o.failMu.Lock()
	if o.syncErr == nil {
		o.syncErr = fmt.Errorf("store: %s/%s: %v: %w", o.ns, o.id, err, errs.ErrObjectReset)
	}
	o.failMu.Unlock()
}

// fatal handles a failed COMMIT, savepoint or rollback: nothing more of
// this object is released (p and every batch still waiting for a sync
// fail), and the connection is closed so the next turn reopens from disk.
// It returns the error to give the caller, wrapping ErrObjectReset.
func (o *Object) fatal(p *gate.Promise, err error) error {
	o.failSync(err)
	ferr := o.syncFailure()
	o.st.log.Error("store: object reset after a storage failure", "namespace", o.ns, "id", o.id, "err", err)
	if p != nil {
		p.Resolve(ferr)
	}
	o.closeCursors()
	o.spOpen = false
	if o.txnOpen && o.conn != nil {
		o.conn.run(o, o.conn.rollback)
		o.txnOpen = false
	}
	// reset waits for the batches the coordinator holds (they fail, since
	// syncErr is set), closes the connection, and clears the failure: the
	// caller has been told.
	o.reset()
	if o.inTurn {
		// Nothing more may be written in this turn: its earlier writes are
		// gone, and later ones would commit half a turn.
		o.turnFailed = ferr
	}
	return ferr
}

// reset clears a handled failure: the connection is closed and the next
// call reopens the database from disk.
func (o *Object) reset() {
	o.mu.Lock()
	o.closeConnLocked()
	o.pending = nil
	o.mu.Unlock()
	o.failMu.Lock()
	o.syncErr = nil
	o.failMu.Unlock()
}

// closeIfIdle closes the connection if the object is idle: not in a turn
// or batch, nothing waiting for a sync. Called by the LRU from another
// goroutine; it never waits.
func (o *Object) closeIfIdle() {
	if !o.mu.TryLock() {
		return
	}
	defer o.mu.Unlock()
	if o.busy || o.conn == nil {
		return
	}
	if o.pending != nil {
		if done, _ := o.pending.Ready(); !done {
			return
		}
	}
	o.closeConnLocked()
}

// shutdown closes the object for Store.Close. The owner must have stopped.
// An open batch is rolled back and its promise fails with ErrClosed.
func (o *Object) shutdown() error {
	if o.inBatch && o.batch != nil {
		o.batch.Resolve(fmt.Errorf("store: %s/%s: closed before commit: %w", o.ns, o.id, errs.ErrClosed))
	}
	o.closeCursors()
	if o.txnOpen && o.conn != nil {
		o.conn.run(o, o.conn.rollback)
		o.txnOpen = false
	}
	o.inBatch, o.inTurn, o.spOpen = false, false, false
	o.mu.Lock()
	defer o.mu.Unlock()
	o.busy = false
	return o.closeConnLocked()
}

// closeConnLocked waits until the object's last handed-over batch is
// settled (so no sync is using its WAL), then closes the connection, which
// checkpoints the WAL into the database file. o.mu is held.
func (o *Object) closeConnLocked() error {
	if o.conn == nil {
		return nil
	}
	if o.pending != nil {
		<-o.pending.Done()
	}
	err := o.conn.close()
	o.conn = nil
	o.st.closedConn(o)
	if err != nil {
		o.st.log.Error("store: close database", "namespace", o.ns, "id", o.id, "err", err)
	}
	return err
}
