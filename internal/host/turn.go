package host

import (
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/store"
)

// turnKey marks a turn's context.
type turnKey struct{}

// turnState is one turn as its context knows it: the activation, the call
// chain, the instance generation it runs for and its level on the chain's
// stack of turns (0: the driver's turn; nested turns above it).
type turnState struct {
	a      *Activation
	ctx    context.Context
	chain  uint64
	gen    uint64
	level  int
	active atomic.Bool // false once the turn ended

	// resetReason, if set during the turn, resets the instance after it
	// (a failed BlockConcurrencyWhile, a panicking alarm handler).
	resetReason error

	mu sync.Mutex
	// outgoing counts the calls out of the turn in flight. The first one
	// ends the storage segment at a durability point and suspends the
	// turn; the last one to return resumes it, unless the turn ended
	// meanwhile (its method returned without waiting for the call).
	outgoing int           // guarded by mu
	pointP   *gate.Promise // guarded by mu; the durability point of the suspension
	ended    bool          // guarded by mu
	// lost is set when a durability point of the turn failed to become
	// durable: the turn fails whatever its code returns.
	lost error // guarded by mu
	// alarmSetMs is the time of the last alarm the turn set (0: none).
	alarmSetMs int64 // guarded by mu
}

func newTurnState(a *Activation, chain, gen uint64, level int) *turnState {
	return &turnState{a: a, chain: chain, gen: gen, level: level}
}

func (ts *turnState) lostErr() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.lost
}

// end marks the turn ended. It reports whether calls out of it are still
// in flight (the turn's storage segment is then closed at their durability
// point, whose promise it returns).
func (ts *turnState) end() (detached bool, point *gate.Promise) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.ended = true
	return ts.outgoing > 0, ts.pointP
}

func turnFrom(ctx context.Context) *turnState {
	ts, _ := ctx.Value(turnKey{}).(*turnState)
	if ts == nil || !ts.active.Load() {
		return nil
	}
	return ts
}

// abortSignal is the panic value of Abort; only the runtime recovers it.
type abortSignal struct{ reason string }

// Abort ends the current turn at once: its writes roll back, the caller
// gets an error wrapping ErrObjectReset with reason, and the instance is
// reset. It does not return.
func Abort(reason string) { panic(abortSignal{reason}) }

// outcome classifies how user code ended.
type outcome int

const (
	returned outcome = iota
	panicked
	aborted
)

// protect runs fn, turning a panic or an Abort into an error. A panic's
// stack is logged.
func (a *Activation) protect(fn func() (any, error)) (v any, err error, how outcome) {
	defer func() {
		if r := recover(); r != nil {
			if ab, ok := r.(abortSignal); ok {
				err = &errs.Call{Message: "durable: object aborted: " + ab.reason, Retryable: true, Remote: true, Err: errs.ErrObjectReset}
				how = aborted
				return
			}
			buf := make([]byte, 8192)
			buf = buf[:runtime.Stack(buf, false)]
			err = &errs.Call{Message: fmt.Sprintf("durable: panic in object: %v", r), Retryable: true, Remote: true, Err: errs.ErrObjectReset}
			how = panicked
			a.h.log.Error("durable: panic in an object; its turn rolled back and the instance resets",
				"namespace", a.id.Namespace, "id", a.id.ID, "panic", fmt.Sprint(r), "stack", string(buf))
		}
	}()
	v, err = fn()
	return v, err, returned
}

// resetError is what callers see when the instance was reset under them.
func resetError(reason string) error {
	return &errs.Call{Message: "durable: object reset: " + reason, Retryable: true, Err: errs.ErrObjectReset}
}

// turn runs one event at level (0: the driver's turn; above: a call that
// entered a turn suspended on its chain, which then commits at once, since
// the driver is blocked and will not).
func (a *Activation) turn(m *Msg, level int) {
	if nm := a.class.Metrics; nm != nil {
		m.metrics, m.stripe = nm, a.stripe
		defer a.observeTurn(nm, m, time.Now())
	}
	nested := level > 0
	if !m.System && m.Ctx != nil && m.Ctx.Err() != nil {
		// The caller gave up while the call was queued: it never runs.
		m.reply(Reply{Err: m.Ctx.Err(), P: gate.Resolved(nil)})
		return
	}
	parent := m.Ctx
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if m.trace != nil {
		ctx, m.trace.span = a.h.cfg.Tracer.StartTurn(ctx, m.trace.link, m.trace.kind, a.id.Namespace, a.id.ID, m.trace.method)
	}

	a.smu.Lock()
	if a.dead || a.obj == nil {
		a.smu.Unlock()
		m.reply(Reply{Err: resetError("the object is not active"), P: gate.Resolved(nil)})
		return
	}
	if err := a.obj.Begin(); err != nil {
		// A sync of the object failed since its last turn: its memory may
		// hold writes that are lost. Reset, and tell this caller to retry.
		a.gen++
		a.smu.Unlock()
		a.inst, a.state = nil, nil
		m.reply(Reply{Err: &errs.Call{Message: err.Error(), Retryable: true, Err: errs.ErrObjectReset}, P: gate.Resolved(nil)})
		return
	}
	ts := newTurnState(a, m.chain, a.gen, level)
	a.beganSegLocked()
	a.turns++
	a.smu.Unlock()
	ts.active.Store(true)
	ctx = context.WithValue(ctx, turnKey{}, ts)
	ts.ctx = ctx
	outer := a.current
	a.current = ts
	defer func() { a.current = outer }()

	if m.Name != "" && a.name == "" {
		a.name = m.Name
	}
	var v any
	var err error
	how := returned
	if a.inst == nil && !m.Lazy {
		_, err, how = a.build(ctx)
	}
	if err == nil {
		inst := a.inst
		v, err, how = a.protect(func() (any, error) { return m.Work(ctx, inst) })
		if err != nil && how == returned {
			err = errs.Remote(err)
		}
	}
	m.panicked = how != returned
	// Calls the turn left running (fire-and-forget) are cancelled with its
	// context; they no longer resume it when they return.
	cancel()
	detached, pointP := ts.end()
	ts.active.Store(false)
	if lost := ts.lostErr(); lost != nil && err == nil {
		// Writes made before a durability point of this turn are lost:
		// the turn fails even if its code went on.
		err = &errs.Call{Message: "durable: the turn's writes before an outgoing call or flush were lost: " + lost.Error(), Retryable: true, Err: errs.ErrObjectReset}
		how = panicked // reset the instance
	}

	a.smu.Lock()
	a.turns--
	if a.gen != ts.gen {
		// The instance was fenced under this turn (a BlockConcurrencyWhile
		// overrun, a lost grant, Close): fence rolled the turn back, and the
		// instance is gone.
		fp := a.fencedP
		a.endSegLocked(nil, resetError("the instance was reset during the turn"))
		a.smu.Unlock()
		a.inst, a.state = nil, nil
		if err == nil {
			err = resetError("the instance was reset during the turn")
		}
		if fp == nil {
			fp = pointP // the turn was suspended: its writes were committed there
		}
		if fp == nil {
			fp = gate.Resolved(nil)
		}
		m.reply(Reply{Err: err, P: fp})
		return
	}
	if detached {
		// The method returned with calls still out: its writes were
		// committed at their durability point, and nothing is open.
		reset := how != returned || ts.resetReason != nil
		if reset {
			a.gen++
			a.newInterruptLocked()
		}
		// Outputs sent while the turn was suspended follow its point, or
		// are dropped with a turn that failed.
		if how != returned {
			a.endSegLocked(nil, err)
		} else {
			a.endSegLocked(pointP, nil)
		}
		a.smu.Unlock()
		if reset {
			a.inst, a.state = nil, nil
		}
		m.reply(Reply{V: v, Err: err, P: pointP})
		return
	}
	storedName := false
	if err == nil && a.name != "" && !a.nameStored && a.obj.Wrote() {
		// An object addressed by name keeps the name with its first write.
		storedName = a.obj.SetMeta(metaName, []byte(a.name)) == nil
	}
	// An alarm deleted by the turn (and not set again) leaves the index
	// once the deletion is durable: listings show no stale alarm, and no
	// empty firing is left for later. Entries written after this point
	// (by later turns) have higher sequence numbers and stay.
	var unindex uint64
	if a.obj.TakeAlarmDeleted() && err == nil {
		if _, _, has, rerr := a.obj.AlarmRecord(); rerr == nil && !has {
			unindex = a.h.alarms.Seq()
		}
	}
	p, endErr := a.obj.End(err)
	if unindex != 0 && endErr == nil {
		id, seq := a.id, unindex
		p.OnDone(func(err error) {
			if err == nil {
				a.h.alarms.Remove(id.Namespace, id.ID, seq)
			}
		})
	}
	if err != nil {
		a.endSegLocked(nil, err)
	} else if endErr != nil {
		a.endSegLocked(nil, endErr)
	} else {
		a.endSegLocked(p, nil)
	}
	if nested {
		a.obj.Commit()
	}
	if endErr != nil && err == nil {
		// An unread Exec error, or the storage failed under the turn.
		if errors.Is(endErr, errs.ErrObjectReset) {
			err = &errs.Call{Message: endErr.Error(), Retryable: true, Err: errs.ErrObjectReset}
			how = panicked // reset the instance
		} else {
			err = errs.Remote(endErr)
		}
	}
	if storedName && err == nil {
		a.nameStored = true
	}
	reset := how != returned || ts.resetReason != nil
	if reset {
		a.gen++
		a.newInterruptLocked()
	}
	a.smu.Unlock()
	if reset {
		a.inst, a.state = nil, nil
	}
	// Only for a failed turn, and with the storage lock released (the
	// turn's lock is taken first).
	if err != nil {
		ts.mu.Lock()
		setAlarm := ts.alarmSetMs != 0
		ts.mu.Unlock()
		if setAlarm {
			a.h.reindexAlarm(a.id)
		}
	}
	m.reply(Reply{V: v, Err: err, P: p})
}

// reindexAlarm follows a failed turn that set an alarm: the record rolled
// back, but SetAlarm had already moved the index entry to the new time,
// which may be later than the record's. A system turn reads the record and
// sets the index to it again (a newer entry, which the scheduler prefers).
// Until it is durable a crash leaves the alarm late, never lost.
func (h *Host) reindexAlarm(id route.ObjectID) {
	h.Post(id, func(ctx context.Context, _ any) (any, error) {
		ts := turnFrom(ctx)
		var at int64
		var ok bool
		if err := ts.a.Do(ts.gen, func(o *store.Object) (err error) {
			at, _, ok, err = o.AlarmRecord()
			return err
		}); err != nil || !ok {
			return nil, err
		}
		return nil, h.alarms.Set(id.Namespace, id.ID, at).Wait(ctx)
	}, nil)
}

// observeTurn counts a turn that started at t0, by the error of its reply,
// on the object's stripe, and logs it if it was slow.
func (a *Activation) observeTurn(nm *metrics.Namespace, m *Msg, t0 time.Time) {
	d := time.Since(t0)
	nm.TurnSeconds.ObserveAt(a.stripe, int64(d))
	// An operator's read is the node's work, not the object's usage.
	if !m.Operator {
		a.use.requests.Add(1)
		a.use.wall.Add(int64(d))
	}
	// Rows of every path the turn ended by (committed, failed, fenced,
	// detached at a durability point) are counted here, at its very end.
	a.smu.Lock()
	var r, w int64
	if a.obj != nil {
		r, w = a.obj.TakeRows()
	}
	a.smu.Unlock()
	if r|w != 0 {
		nm.RowsRead.AddAt(a.stripe, uint64(r))
		nm.RowsWritten.AddAt(a.stripe, uint64(w))
		if !m.Operator {
			a.use.rowsRead.Add(r)
			a.use.rowsWritten.Add(w)
		}
	}
	if m.replyErr != nil {
		nm.TurnErrors[errorKind(m.replyErr, m.panicked)].IncAt(a.stripe)
	}
	if slow := a.h.cfg.SlowTurn; slow > 0 && d > slow && !m.Background {
		a.h.log.Warn("durable: slow turn", "namespace", a.id.Namespace, "id", a.id.ID,
			"duration", d.Round(time.Millisecond), "threshold", slow, "err", m.replyErr)
	}
}

// errorKind classifies a turn's error for its metrics: panicked says the
// work (or the constructor) panicked or called Abort.
func errorKind(err error, panicked bool) string {
	var ce *errs.Call
	switch {
	case panicked:
		return metrics.KindPanic
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return metrics.KindCancelled
	case errors.As(err, &ce) && ce.Remote:
		return metrics.KindError // returned by the code, whatever it wraps
	case errors.Is(err, errs.ErrObjectReset):
		return metrics.KindReset
	default:
		return metrics.KindOther
	}
}

// build constructs the instance (in the turn of ctx).
func (a *Activation) build(ctx context.Context) (any, error, outcome) {
	inst, err, how := a.protect(func() (any, error) { return a.construct(ctx) })
	if err == nil {
		err = a.commitConstruction(ctx)
	}
	if err == nil {
		a.inst = inst
		return inst, nil, how
	}
	if how == returned {
		err = errs.Remote(err)
	} else if ts := turnFrom(ctx); ts != nil {
		ts.resetReason = err
	}
	return nil, err, how
}

// commitConstruction ends the turn's storage segment once the constructor
// returned, so that what the constructor wrote (typically its schema)
// commits on its own: a turn that then fails rolls back its own writes,
// never the schema under the live instance built on it. The segment's
// promise orders before the turn's later outputs (promises resolve in
// order), so nothing waits on it here.
func (a *Activation) commitConstruction(ctx context.Context) error {
	ts := turnFrom(ctx)
	if ts == nil {
		return nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.outgoing > 0 {
		return nil // the segment ended at the calls' durability point
	}
	// An object addressed by name keeps the name with its first write, and
	// the constructor's may be the only one (a schema, then reads).
	a.smu.Lock()
	storeName := false
	if a.obj != nil && a.name != "" && !a.nameStored && a.obj.InTurn() && a.obj.Wrote() {
		storeName = a.obj.SetMeta(metaName, []byte(a.name)) == nil
	}
	a.smu.Unlock()
	p, err := a.point(ts)
	if err != nil {
		if errors.Is(err, store.ErrNotInTurn) {
			return nil // no storage segment is open: nothing to commit
		}
		return err
	}
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead {
		return resetError("the instance was reset during construction")
	}
	if err := a.obj.Begin(); err != nil {
		a.gen++
		a.newInterruptLocked()
		return resetError("the object's storage failed after construction")
	}
	a.beganSegLocked()
	if done, perr := p.Ready(); done && perr != nil {
		// The COMMIT of the constructor's writes failed at once (the
		// object reset): the instance must not be built on writes that are
		// gone. The turn fails, retryably; the next event constructs again.
		return &errs.Call{Message: "durable: object reset: the constructor's writes could not be committed: " + perr.Error(),
			Retryable: true, Err: errs.ErrObjectReset}
	}
	if storeName {
		a.nameStored = true
	}
	return nil
}

// Instance returns the instance, constructing it if the turn in ctx is
// lazy and it is not built yet.
func (a *Activation) Instance(ctx context.Context) (any, error) {
	if a.inst != nil {
		return a.inst, nil
	}
	inst, err, _ := a.build(ctx)
	return inst, err
}

// metaName is the object's stored name.
const metaName = "name"

// construct builds the instance: the name is read from storage if the
// event did not carry it, then the class constructor runs.
func (a *Activation) construct(ctx context.Context) (any, error) {
	var b []byte
	var ok bool
	gen := a.Gen()
	if ts := turnFrom(ctx); ts != nil {
		gen = ts.gen
	}
	err := a.Do(gen, func(o *store.Object) (err error) {
		b, ok, err = o.Meta(metaName)
		return err
	})
	if err != nil {
		return nil, err
	}
	if ok {
		a.nameStored = true
		if a.name == "" {
			a.name = string(b)
		}
	} else {
		a.nameStored = false
	}
	return a.class.New(ctx, a)
}

// Do runs fn on the object's storage for an instance of generation gen,
// holding the storage lock; a stale generation gets ErrObjectReset.
func (a *Activation) Do(gen uint64, fn func(o *store.Object) error) error {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != gen || a.dead || a.obj == nil {
		return resetError("this instance is stale: its storage was fenced")
	}
	return fn(a.obj)
}

// Gen returns the current instance generation.
func (a *Activation) Gen() uint64 {
	a.smu.Lock()
	defer a.smu.Unlock()
	return a.gen
}

// suspend prepares an outgoing call of the turn: the first call in flight
// ends the turn's storage segment at a durability point and suspends the
// turn (calls on its chain may enter); every call waits until that point is
// durable before it leaves.
func (a *Activation) suspend(ctx context.Context, ts *turnState) error {
	ts.mu.Lock()
	if ts.ended {
		ts.mu.Unlock()
		return resetError("the turn that made this call has ended")
	}
	if ts.outgoing == 0 {
		p, err := a.point(ts)
		if err != nil {
			ts.mu.Unlock()
			return err
		}
		a.tok.Suspend()
		ts.pointP = p
	}
	ts.outgoing++
	p := ts.pointP
	ts.mu.Unlock()
	if err := p.Wait(ctx); err != nil {
		ts.markLost(p)
		a.resume(ts)
		return err
	}
	return nil
}

// markLost fails the turn if its durability point p failed (not merely
// the caller's context).
func (ts *turnState) markLost(p *gate.Promise) {
	if done, err := p.Ready(); done && err != nil {
		ts.mu.Lock()
		if ts.lost == nil {
			ts.lost = err
		}
		ts.mu.Unlock()
	}
}

// resume ends one outgoing call; the last one back waits until no nested
// turn is in progress and starts the turn's next storage segment. A turn
// that was fenced meanwhile is not resumed: its instance is gone.
func (a *Activation) resume(ts *turnState) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.outgoing--
	if ts.outgoing > 0 || ts.ended || a.Gen() != ts.gen {
		return
	}
	a.tok.Resume(ts.level)
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead {
		return
	}
	if err := a.obj.Begin(); err != nil {
		// A sync failed while the turn waited: the instance must go (the
		// turn fails when it ends).
		a.h.log.Warn("durable: the object's storage failed while its turn waited on a call; the instance resets",
			"namespace", a.id.Namespace, "id", a.id.ID, "err", err)
		a.gen++
		a.newInterruptLocked()
		return
	}
	a.beganSegLocked()
}

// errPointInTransaction refuses a durability point inside Transaction.
var errPointInTransaction = errors.New("durable: an outgoing call or a flush cannot happen inside Storage.Transaction: the transaction would commit half done; make the call before or after it")

// point ends the turn's current storage segment and commits it; the
// returned promise is ready when its writes are durable (alarm index
// entries are durable before SetAlarm returns). An Exec error nobody read fails the segment
// (rolled back) and is returned; the turn goes on in a new segment.
func (a *Activation) point(ts *turnState) (*gate.Promise, error) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead {
		return nil, resetError("the instance was reset")
	}
	if a.obj.InTransaction() {
		return nil, errPointInTransaction
	}
	p, err := a.obj.End(nil)
	if err != nil {
		if !errors.Is(err, store.ErrNotInTurn) {
			a.endSegLocked(nil, err)
		}
		if !errors.Is(err, store.ErrNotInTurn) && !errors.Is(err, errs.ErrObjectReset) {
			if a.obj.Begin() == nil { // the segment rolled back; the turn goes on
				a.beganSegLocked()
			}
		}
		return nil, err
	}
	a.obj.Commit()
	a.endSegLocked(p, nil)
	return p, nil
}

// DurabilityPoint makes the writes of the turn in ctx durable before
// something leaves (a flushed response). It returns at once outside a turn.
func DurabilityPoint(ctx context.Context) error {
	ts := turnFrom(ctx)
	if ts == nil {
		return nil
	}
	a := ts.a
	ts.mu.Lock()
	if ts.outgoing > 0 {
		// Calls are out: the writes so far are committed at their point.
		p := ts.pointP
		ts.mu.Unlock()
		return p.Wait(ctx)
	}
	defer ts.mu.Unlock()
	p, err := a.point(ts)
	if err != nil {
		return err
	}
	werr := p.Wait(ctx)
	if done, perr := p.Ready(); done && perr != nil && ts.lost == nil {
		ts.lost = perr // ts.mu is held
	}
	a.smu.Lock()
	if a.gen == ts.gen && !a.dead {
		if err := a.obj.Begin(); err != nil {
			a.gen++
			a.newInterruptLocked()
		} else {
			a.beganSegLocked()
		}
	}
	a.smu.Unlock()
	return werr
}

// ActivationFrom returns the activation whose turn ctx belongs to, or nil.
func ActivationFrom(ctx context.Context) *Activation {
	if ts := turnFrom(ctx); ts != nil {
		return ts.a
	}
	return nil
}
