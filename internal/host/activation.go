package host

import (
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durable-go/durable/internal/actor"
	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/tracing"
)

// Work is what a turn does with the instance; its result is the reply.
type Work func(ctx context.Context, inst any) (any, error)

// Msg is one event for an object.
type Msg struct {
	Ctx    context.Context // the caller's; nil for system events
	Name   string          // the name the caller addressed the object by, or ""
	Work   Work
	System bool // an alarm, a WebSocket event or WaitUntil: never refused for a full mailbox
	// Operator marks an operator's read (Inspect): a turn like any other,
	// but not a request of the object's usage.
	Operator bool
	// Lazy leaves the instance unbuilt until the work asks for it
	// (Activation.Instance): an alarm turn first checks the record.
	Lazy bool
	// Background marks work meant to run long (WaitUntil): never logged
	// as a slow turn.
	Background bool

	chain   uint64
	done    chan Reply  // nil when nobody waits
	onReply func(Reply) // called with the reply instead (must not block)
	// unqueue removes the call from the mailbox it waits in (its caller
	// gave up); set once it is queued, by the caller's goroutine.
	unqueue func()
	// replyErr is the error of the reply, for the turn's metrics; written
	// and read on the object's goroutine.
	replyErr error
	// panicked is set when the work or the constructor panicked or
	// called Abort (for the turn's metrics).
	panicked bool
	// metrics and stripe are the counters of the object that ran the
	// event, set before the reply (the waiter reads them after it).
	metrics *metrics.Namespace
	stripe  uint8
	// trace names the event for its span and holds the span; nil when
	// tracing is off (Host.traced sets it).
	trace *traceInfo
}

// traceInfo is a traced event's kind (rpc, fetch, alarm, websocket,
// operator, background, system), method (the method's or handler's name)
// and, once its turn starts, span, which ends when the reply's promise is
// ready.
type traceInfo struct {
	kind, method string
	link         tracing.Link // the span that caused the event, if not its caller
	span         tracing.Span
}

// traced names m for tracing, when tracing is on.
func (h *Host) traced(m *Msg, kind, method string) *Msg {
	if h.cfg.Tracer != nil {
		m.trace = &traceInfo{kind: kind, method: method}
	}
	return m
}

// Reply is a turn's outcome. P is ready when the writes the turn could
// have seen are durable: V may leave only then.
type Reply struct {
	V   any
	Err error
	P   *gate.Promise
}

func (m *Msg) reply(r Reply) {
	m.replyErr = r.Err
	if m.trace != nil && m.trace.span.Active() {
		m.trace.span.EndDurable(time.Now(), r.P, r.Err)
	}
	if m.done != nil {
		m.done <- r
	}
	if m.onReply != nil {
		m.onReply(r)
	}
}

// Activation is one live object.
type Activation struct {
	h      *Host
	id     route.ObjectID
	stripe uint8 // the object's stripe of its namespace's counters
	use    useCounters
	// evictCh asks the driver to retire once its mailbox is empty.
	evictCh chan struct{}
	class   *Class
	mb      *actor.Mailbox[*Msg]
	tok     actor.Token

	stopOnce sync.Once
	stopCh   chan struct{} // closed by stop (Close)
	retired  chan struct{} // closed when this activation let go of its storage

	// smu guards the storage handle: every store call made for this
	// activation, by its driver, a nested turn or user code, holds it.
	smu       sync.Mutex
	obj       *store.Object                      // guarded by smu; nil before activation and after retiring
	gen       uint64                             // guarded by smu; the instance generation; a reset increments it
	dead      bool                               // guarded by smu; no more storage (retired or killed)
	interrupt atomic.Pointer[context.CancelFunc] // cancels the current generation's SQLite calls
	fencedP   *gate.Promise                      // guarded by smu; the promise of the turn fence rolled back
	// segOut is what outputs sent during the open storage segment wait on
	// (WebSocket sends): it follows the segment's promise when the
	// segment ends, or fails if the segment rolls back. nil: none yet.
	segOut *gate.Promise // guarded by smu
	lastP  *gate.Promise // guarded by smu; the promise of the last segment that ended well
	// segFailed is set when a segment ended in failure (rolled back,
	// fenced), until the next segment begins: outputs sent meanwhile (by
	// the failing turn's code) are dropped.
	segFailed error // guarded by smu
	// firing is the alarm whose handler is running (GetAlarm hides it).
	firing firingAlarm // guarded by smu
	// turns counts the turns in progress (a suspended turn, nested turns):
	// while one is, outputs wait for the next segment end.
	turns int // guarded by smu

	grant route.Grant
	log   store.ObjectLog

	// Turn-holder state (the driver, or a nested turn holding the token).
	inst       any
	state      any        // what the root package keeps for the instance (its *durable.State)
	current    *turnState // the turn in progress (nested turns stack on it)
	name       string     // the object's name, if known
	nameStored bool       // the name is in the object's storage
}

func (h *Host) newActivation(id route.ObjectID, class *Class) *Activation {
	if class.Metrics != nil {
		class.Metrics.Activations.Inc()
	}
	return &Activation{
		h:       h,
		id:      id,
		stripe:  metrics.StripeOf(id.ID),
		class:   class,
		mb:      actor.NewMailbox[*Msg](h.cfg.MailboxSize),
		stopCh:  make(chan struct{}),
		evictCh: make(chan struct{}, 1),
		retired: make(chan struct{}),
	}
}

// ID returns the object the activation hosts.
func (a *Activation) ID() route.ObjectID { return a.id }

// Name returns the object's name ("" when unknown).
func (a *Activation) Name() string { return a.name }

// SetState keeps the root package's state of the instance being built.
func (a *Activation) SetState(s any) { a.state = s }

// State returns what SetState kept for the current instance.
func (a *Activation) State() any { return a.state }

// Host returns the activation's host.
func (a *Activation) Host() *Host { return a.h }

// activate goes Placement.Acquire → CommitLog.Open → restore → replay and
// opens the object's storage.
func (a *Activation) activate() error {
	ctx := context.Background()
	g, err := a.h.cfg.Placement.Acquire(ctx, a.id)
	if err != nil {
		return fmt.Errorf("acquire %s/%s: %w", a.id.Namespace, a.id.ID, err)
	}
	l, err := a.h.cfg.CommitLog.Open(ctx, a.id, g)
	if err != nil {
		g.Release(ctx)
		return fmt.Errorf("open commit log of %s/%s: %w", a.id.Namespace, a.id.ID, err)
	}
	// Restore and replay: single-node mode has no snapshots and an empty
	// log; the database file is the state. Cluster mode restores the
	// latest snapshot and replays the records after it here.
	if _, r, err := a.h.cfg.Snapshots.Latest(ctx, a.id); err == nil {
		r.Close()
		l.Close()
		g.Release(ctx)
		return fmt.Errorf("restore %s/%s: snapshots are not supported in single-node mode", a.id.Namespace, a.id.ID)
	} else if !errors.Is(err, store.ErrNoSnapshot) {
		l.Close()
		g.Release(ctx)
		return fmt.Errorf("restore %s/%s: %w", a.id.Namespace, a.id.ID, err)
	}
	if err := l.Replay(ctx, l.Tail(), func(store.LSN, []byte) error { return nil }); err != nil {
		l.Close()
		g.Release(ctx)
		return fmt.Errorf("replay %s/%s: %w", a.id.Namespace, a.id.ID, err)
	}
	obj, err := a.h.cfg.Store.Acquire(a.id.Namespace, a.id.ID)
	if err != nil {
		l.Close()
		g.Release(ctx)
		return err
	}
	a.grant, a.log = g, l
	a.smu.Lock()
	a.obj = obj
	a.newInterruptLocked()
	a.smu.Unlock()
	return nil
}

// newInterruptLocked gives the storage a fresh interrupt context for the
// current instance generation.
func (a *Activation) newInterruptLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	a.interrupt.Store(&cancel)
	a.obj.SetInterrupt(ctx)
}

// run is the activation's driver goroutine.
func (a *Activation) run(prev <-chan struct{}) {
	defer a.h.drivers.Done()
	defer a.h.liveN.Add(-1)
	if prev != nil {
		<-prev // the previous activation of this object lets go of its storage first
	}
	if err := a.activate(); err != nil {
		a.h.log.Error("durable: activation failed", "namespace", a.id.Namespace, "id", a.id.ID, "err", err)
		a.retire(fmt.Errorf("durable: activate %s/%s: %w: %w", a.id.Namespace, a.id.ID, err, errs.ErrObjectReset))
		return
	}
	var commitWait <-chan struct{}
	// One idle timer for the activation's life: armed when the mailbox
	// runs dry, stopped when an event arrives.
	var idle clock.Timer
	armed := false
	stopIdle := func() {
		if armed {
			if !idle.Stop() {
				select { // a tick that fired meanwhile is stale
				case <-idle.C():
				default:
				}
			}
			armed = false
		}
	}
	defer stopIdle()
	for {
		if m, ok := a.mb.Pop(); ok {
			stopIdle()
			a.tok.Begin(m.chain)
			a.turn(m, 0)
			a.tok.Finish()
			continue
		}
		// Nothing queued: commit now, or when the running sync round ends
		// (a batch committed before then waits for the next round anyway).
		if commitWait == nil {
			commitWait = a.commit(true)
		}
		select {
		case <-a.stopCh:
			if a.mb.Len() == 0 {
				a.commit(false)
				a.retire(ErrClosed)
				return
			}
			continue
		default:
		}
		if !armed {
			if idle == nil {
				idle = a.h.cfg.Clock.NewTimer(a.idleTimeout())
			} else {
				idle.Reset(a.idleTimeout())
			}
			armed = true
		}
		select {
		case <-a.mb.Signal():
		case <-commitWait:
			commitWait = nil
			a.commit(false)
		case <-idle.C():
			armed = false
			if a.tryRetire() {
				return
			}
		case <-a.evictCh:
			// An operator asked: retire now if nothing arrived meanwhile
			// (an event that did keeps the object live).
			if a.tryRetire() {
				return
			}
		case <-a.stopCh:
		case <-a.grant.Lost():
			a.fence(errors.New("the object's placement grant was lost"))
			a.inst, a.state = nil, nil
		}
	}
}

// idleTimeout is how long the instance may stay idle: HibernateAfter if
// the object has WebSockets (its only activity), IdleTimeout otherwise.
func (a *Activation) idleTimeout() time.Duration {
	if s := a.h.cfg.Sockets; s != nil && a.h.cfg.HibernateAfter > 0 && s(a.id) > 0 {
		return a.h.cfg.HibernateAfter
	}
	return a.h.cfg.IdleTimeout
}

// endSegLocked settles the outputs of the storage segment that just
// ended: they follow p, or are dropped if the segment failed.
func (a *Activation) endSegLocked(p *gate.Promise, failed error) {
	if failed == nil && p != nil {
		a.lastP = p
	}
	a.segFailed = failed
	out := a.segOut
	if out == nil {
		return
	}
	a.segOut = nil
	if failed != nil {
		out.Resolve(fmt.Errorf("durable: the turn failed, so what it sent is dropped: %w", failed))
		return
	}
	out.Follow(p)
}

// beganSegLocked notes that a storage segment began.
func (a *Activation) beganSegLocked() { a.segFailed = nil }

// OutputPromise returns what an output of the object sent now must wait
// for: during a turn, the end of its storage segment (the turn's writes
// before the output, and any after it in the same segment; a suspended
// turn's output waits for the segment after it resumes); after a segment
// failed, a failed promise until the next begins (the output is dropped);
// between turns, the last segment's promise. nil: nothing to wait for.
func (h *Host) OutputPromise(id route.ObjectID) *gate.Promise {
	h.mu.Lock()
	a := h.live[id]
	h.mu.Unlock()
	if a == nil {
		return nil
	}
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.dead || a.obj == nil {
		return nil
	}
	if a.segOut != nil {
		return a.segOut
	}
	if a.segFailed != nil {
		return gate.Resolved(a.segFailed)
	}
	if a.turns > 0 || a.obj.InTurn() {
		a.segOut = gate.New()
		return a.segOut
	}
	return a.lastP
}

// IsLive reports whether the object has a live activation.
func (h *Host) IsLive(id route.ObjectID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[id] != nil
}

// commit ends the open batch. With wait, it may instead return a channel
// to commit on (CommitWait).
func (a *Activation) commit(wait bool) <-chan struct{} {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.dead || a.obj == nil {
		return nil
	}
	if wait {
		if ch := a.obj.CommitWait(); ch != nil {
			return ch
		}
	}
	a.obj.Commit()
	return nil
}

// tryRetire retires the activation if nothing arrived meanwhile.
func (a *Activation) tryRetire() bool {
	h := a.h
	h.mu.Lock()
	if !a.mb.CloseIfEmpty() {
		h.mu.Unlock()
		return false
	}
	if h.live[a.id] == a {
		delete(h.live, a.id)
	}
	h.retiring[a.id] = a.retired
	h.mu.Unlock()
	a.commit(false)
	a.retire(nil)
	if a.class.Metrics != nil {
		a.class.Metrics.Evictions.Inc()
	}
	return true
}

// retire lets go of the storage and placement. Events still queued fail
// with err.
func (a *Activation) retire(err error) {
	h := a.h
	defer h.foldUsage(a) // what it used is kept for the next TakeUsage
	h.mu.Lock()
	if h.live[a.id] == a {
		delete(h.live, a.id)
	}
	if _, ok := h.retiring[a.id]; !ok {
		h.retiring[a.id] = a.retired
	}
	h.mu.Unlock()
	if err == nil {
		err = ErrClosed
	}
	for _, m := range a.mb.Close() {
		m.reply(Reply{Err: err, P: gate.Resolved(nil)})
	}
	a.smu.Lock()
	obj := a.obj
	a.obj, a.dead = nil, true
	if c := a.interrupt.Load(); c != nil {
		(*c)()
	}
	a.smu.Unlock()
	a.inst, a.state = nil, nil
	if obj != nil {
		obj.Release()
	}
	if a.log != nil {
		a.log.Close()
	}
	if a.grant != nil {
		a.grant.Release(context.Background())
	}
	h.mu.Lock()
	if h.retiring[a.id] == a.retired {
		delete(h.retiring, a.id)
	}
	h.mu.Unlock()
	if h.cfg.OnRetire != nil {
		h.cfg.OnRetire(a.id) // before the next activation of the object may start
	}
	close(a.retired)
}

// stop asks the driver to finish its turn and retire (Close). Queued events
// fail with ErrClosed at once.
func (a *Activation) stop() {
	a.stopOnce.Do(func() {
		for _, m := range a.mb.Close() {
			m.reply(Reply{Err: ErrClosed, P: gate.Resolved(nil)})
		}
		close(a.stopCh)
	})
}

// fence resets the instance from outside its turn: the storage handle of
// the current generation is dead (calls fail with ErrObjectReset, a
// running statement is interrupted), and the turn in progress, if any, is
// rolled back. The next event constructs a new instance.
func (a *Activation) fence(reason error) {
	if c := a.interrupt.Load(); c != nil {
		(*c)() // without smu: a statement holding it is interrupted
	}
	a.smu.Lock()
	defer a.smu.Unlock()
	a.gen++
	if a.dead || a.obj == nil {
		return
	}
	a.newInterruptLocked()
	a.fencedP = nil
	resetErr := fmt.Errorf("durable: instance reset: %v: %w", reason, errs.ErrObjectReset)
	if p, err := a.obj.End(resetErr); err == nil || !errors.Is(err, store.ErrNotInTurn) {
		a.fencedP = p // the rolled-back turn's batch: what it read
	}
	a.endSegLocked(nil, resetErr) // what the fenced generation sent is dropped
}

// kill fences the activation and gives up its storage for good (Close
// after its deadline).
func (a *Activation) kill(reason error) {
	a.fence(reason)
	a.smu.Lock()
	a.dead = true
	a.smu.Unlock()
}
