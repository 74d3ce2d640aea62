package host

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/store"
)

// turnKey marks a turn's context.
type turnKey struct{}

// turnState is one turn as its context knows it: the activation, the call
// chain, and the instance generation it runs for.
type turnState struct {
	a      *Activation
	ctx    context.Context
	chain  uint64
	gen    uint64
	active atomic.Bool // false once the turn ended
	// extra are promises the turn's outputs also wait for (the alarm
	// index entries of the alarms it set).
	extra []*gate.Promise
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

// turn runs one event. nested is true for a call that entered a turn
// suspended on its chain; it then commits at once, since the driver is
// blocked and will not.
func (a *Activation) turn(m *Msg, nested bool) {
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
	ts := &turnState{a: a, chain: m.chain, gen: a.gen}
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
	ts.active.Store(false)

	a.smu.Lock()
	if a.gen != ts.gen {
		// The instance was fenced under this turn (a BlockConcurrencyWhile
		// overrun, a lost grant, Close): fence rolled the turn back.
		a.smu.Unlock()
		if err == nil {
			err = resetError("the instance was reset during the turn")
		}
		m.reply(Reply{Err: err, P: gate.Resolved(nil)})
		return
	}
	storedName := false
	if err == nil && a.name != "" && !a.nameStored && a.obj.Wrote() {
		// An object addressed by name keeps the name with its first write.
		storedName = a.obj.SetMeta(metaName, []byte(a.name)) == nil
	}
	p, endErr := a.obj.End(err)
	if len(ts.extra) > 0 {
		p = gate.All(append([]*gate.Promise{p}, ts.extra...)...)
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
	reset := how != returned || a.resetReason != nil
	if reset {
		a.gen++
		a.newInterruptLocked()
	}
	a.smu.Unlock()
	if reset {
		a.inst, a.state = nil, nil
		a.resetReason = nil
	}
	m.reply(Reply{V: v, Err: err, P: p})
}

// build constructs the instance (in the current turn).
func (a *Activation) build(ctx context.Context) (any, error, outcome) {
	inst, err, how := a.protect(func() (any, error) { return a.construct(ctx) })
	if err == nil {
		a.inst = inst
		return inst, nil, how
	}
	if how == returned {
		err = errs.Remote(err)
	}
	if how != returned {
		a.resetReason = err
	}
	return nil, err, how
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
	a.smu.Lock()
	b, ok, err := a.obj.Meta(metaName)
	a.smu.Unlock()
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

// suspend makes the turn's writes so far durable and lets calls on its
// chain enter: a durability point before an outgoing call.
func (a *Activation) suspend(ctx context.Context, ts *turnState) error {
	p, err := a.point(ts)
	if err != nil {
		return err
	}
	a.tok.Suspend()
	if err := p.Wait(ctx); err != nil {
		a.resume(ts)
		return err
	}
	return nil
}

// resume waits for nested turns to end and starts the turn's next segment.
func (a *Activation) resume(ts *turnState) {
	a.tok.Resume()
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead {
		return
	}
	if err := a.obj.Begin(); err != nil {
		// A sync failed while the turn waited: the instance must go.
		a.gen++
		a.newInterruptLocked()
	}
}

// point ends the turn's current storage segment and commits it; the
// returned promise is ready when its writes are durable. An Exec error
// nobody read fails the segment (rolled back) and is returned.
func (a *Activation) point(ts *turnState) (*gate.Promise, error) {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead {
		return nil, resetError("the instance was reset")
	}
	p, err := a.obj.End(nil)
	if err != nil {
		a.obj.Begin()
		return nil, err
	}
	a.obj.Commit()
	if len(ts.extra) > 0 {
		p = gate.All(append([]*gate.Promise{p}, ts.extra...)...)
		ts.extra = nil
	}
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
	p, err := a.point(ts)
	if err != nil {
		return err
	}
	werr := p.Wait(ctx)
	a.smu.Lock()
	if a.gen == ts.gen && !a.dead {
		if err := a.obj.Begin(); err != nil {
			a.gen++
			a.newInterruptLocked()
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
