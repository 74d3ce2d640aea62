package host

import (
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/tracing"
	"time"

	"github.com/durable-go/durable/internal/actor"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/route"
)

// ErrOverloaded is the error of a call refused for a full mailbox (the
// platform's text).
var ErrOverloaded = &errs.Call{
	Message:    "Durable Object is overloaded. Too many requests queued.",
	Overloaded: true,
	Err:        errs.ErrOverloaded,
}

// Call delivers a call to an object and waits for its reply, and for the
// writes the reply could reveal to be durable. From inside a turn, the
// calling turn first reaches a durability point and lets calls on its chain
// back in while it waits (A→B→A). method and arg are the call's wire form
// (for a remote node); work is its in-process form.
func (h *Host) Call(ctx context.Context, id route.ObjectID, name, method string, arg []byte, work Work) (any, error) {
	if h.cfg.Tracer != nil {
		return h.tracedCall(ctx, id, name, method, arg, work)
	}
	return h.call(ctx, &Msg{Ctx: ctx, Name: name, Work: work, done: make(chan Reply, 1)}, id, method, arg)
}

// tracedCall is Call with its caller's span; the call's message carries
// the span's context to the turn.
func (h *Host) tracedCall(ctx context.Context, id route.ObjectID, name, method string, arg []byte, work Work) (any, error) {
	kind := "rpc"
	if method == "ServeHTTP" {
		kind = "fetch"
	}
	ctx, span := h.cfg.Tracer.StartCall(ctx, kind, id.Namespace, id.ID, method)
	m := h.traced(&Msg{Ctx: ctx, Name: name, Work: work, done: make(chan Reply, 1)}, kind, method)
	v, err := h.call(ctx, m, id, method, arg)
	span.End(err)
	return v, err
}

func (h *Host) call(ctx context.Context, m *Msg, id route.ObjectID, method string, arg []byte) (any, error) {
	if ts := turnFrom(ctx); ts != nil {
		a := ts.a
		if err := a.suspend(ctx, ts); err != nil {
			return nil, err
		}
		defer a.resume(ts)
		m.chain = ts.chain
	} else {
		m.chain = h.newChain()
	}
	node, err := h.cfg.Placement.Owner(ctx, id)
	if err != nil {
		return nil, err
	}
	env := &route.Envelope{To: id, Method: method, Chain: m.chain, Arg: arg, Local: m}
	if _, err := h.cfg.Transport.Call(ctx, node, env); err != nil {
		return nil, err
	}
	select {
	case r := <-m.done:
		// Errors wait too: an error can reveal what the turn read.
		done, err := r.P.Ready()
		if !done {
			if m.metrics != nil {
				m.metrics.OutputsHeld.AddAt(m.stripe, 1)
				defer m.metrics.OutputsHeld.AddAt(m.stripe, -1)
			}
			err = r.P.Wait(ctx)
		}
		if err != nil {
			if errors.Is(err, errs.ErrObjectReset) {
				return nil, &errs.Call{Message: err.Error(), Retryable: true, Err: errs.ErrObjectReset}
			}
			return nil, err
		}
		return r.V, r.Err
	case <-ctx.Done():
		if m.unqueue != nil {
			// A call whose caller gives up while it is queued leaves the
			// mailbox (freeing its place) and never runs.
			m.unqueue()
		}
		return nil, ctx.Err()
	}
}

// Post queues a system event (never refused for a full mailbox) and does
// not wait for it. done, if not nil, receives the turn's reply.
func (h *Host) Post(id route.ObjectID, work Work, done chan Reply) error {
	m := h.traced(&Msg{Work: work, System: true, chain: h.newChain(), done: done}, "system", "")
	_, err := h.serve(context.Background(), &route.Envelope{To: id, Local: m})
	return err
}

// PostFunc queues a WebSocket event (handler names it) like Post; onReply
// receives the turn's reply (it must not block). If PostFunc returns an
// error, onReply is never called.
func (h *Host) PostFunc(id route.ObjectID, handler string, work Work, onReply func(Reply)) error {
	m := h.traced(&Msg{Work: work, System: true, chain: h.newChain(), onReply: onReply}, "websocket", handler)
	_, err := h.serve(context.Background(), &route.Envelope{To: id, Local: m})
	return err
}

// serve accepts an envelope on this node: a call on the chain of a turn
// suspended in the object runs now, on the caller's goroutine; anything
// else goes to the object's mailbox (starting its activation if needed).
func (h *Host) serve(ctx context.Context, env *route.Envelope) (any, error) {
	m, ok := env.Local.(*Msg)
	if !ok {
		return nil, fmt.Errorf("durable: envelope for %s/%s has no in-process call", env.To.Namespace, env.To.ID)
	}
	id := env.To
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	class := h.classes[id.Namespace]
	if class == nil {
		h.mu.Unlock()
		return nil, fmt.Errorf("durable: namespace %q is not defined on this runtime: %w", id.Namespace, errs.ErrNotImplemented)
	}
	if h.paused[id] && !m.System {
		h.mu.Unlock()
		return nil, &errs.Call{Message: fmt.Sprintf("durable: object %s/%s is paused by an operator; retry later", id.Namespace, id.ID),
			Retryable: true, Overloaded: true, Err: errs.ErrOverloaded}
	}
	a := h.live[id]
	if a != nil && !m.System {
		if level, ok := a.tok.Enter(m.chain); ok {
			h.mu.Unlock()
			a.turn(m, level)
			a.tok.Exit()
			return nil, nil
		}
	}
	if a == nil {
		a = h.newActivation(id, class)
		h.live[id] = a
		prev := h.retiring[id]
		h.drivers.Add(1)
		h.liveN.Add(1)
		go a.run(prev)
	}
	err := a.mb.Push(m, m.System)
	h.mu.Unlock()
	if err == nil {
		mb := a.mb
		m.unqueue = func() { mb.Remove(func(q *Msg) bool { return q == m }) }
	}
	switch {
	case errors.Is(err, actor.ErrFull):
		if class.Metrics != nil {
			class.Metrics.Overloaded.Inc()
		}
		h.logOverload(class, id)
		return nil, ErrOverloaded
	case err != nil:
		return nil, ErrClosed
	}
	return nil, nil
}

// WaitUntil runs fn as its own turn after the current one; the object stays
// live until it ends (at most WaitUntilLimit).
func (a *Activation) WaitUntil(fn func(ctx context.Context)) error {
	m := &Msg{System: true, Background: true, chain: a.h.newChain(), Work: func(ctx context.Context, _ any) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, WaitUntilLimit)
		defer cancel()
		fn(ctx)
		return nil, nil
	}}
	if a.h.traced(m, "background", "waitUntil").trace != nil && a.current != nil {
		m.trace.link = tracing.LinkFrom(a.current.ctx)
	}
	if err := a.mb.Push(m, true); err != nil {
		return fmt.Errorf("durable: WaitUntil: the object is shutting down: %w", errs.ErrClosed)
	}
	return nil
}

// BlockConcurrencyWhile runs fn with nothing else delivered to the object,
// not even a call on the turn's own chain. An error from fn, or a run longer
// than BlockConcurrencyLimit, resets the instance (after the overrun its
// storage is fenced at once; fn keeps running but can no longer touch it).
func (a *Activation) BlockConcurrencyWhile(fn func(ctx context.Context) error) error {
	ts := a.current
	if ts == nil || !ts.active.Load() {
		return errors.New("durable: BlockConcurrencyWhile must be called from the object's constructor or one of its turns")
	}
	ctx := ts.ctx
	a.tok.Block(true)
	defer a.tok.Block(false)
	type result struct {
		err      error
		panicked bool
		value    any
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{panicked: true, value: r}
			}
		}()
		done <- result{err: fn(ctx)}
	}()
	t := a.h.cfg.Clock.NewTimer(BlockConcurrencyLimit)
	defer t.Stop()
	select {
	case r := <-done:
		if r.panicked {
			panic(r.value) // Abort or a panic in fn ends the turn as it would outside
		}
		if r.err != nil {
			ts.resetReason = r.err
		}
		return r.err
	case <-t.C():
		const why = "BlockConcurrencyWhile ran longer than 30 s"
		a.fence(errors.New(why))
		return resetError(why)
	}
}

// Inspect runs fn on an object's storage as a turn of that object, serial
// with its other turns, without building its instance (an operator's
// read); it returns fn's error once the turn's writes (none, for a read)
// are durable. The object is activated if it was not live.
func (h *Host) Inspect(ctx context.Context, id route.ObjectID, fn func(o *store.Object) error) error {
	return h.inspect(ctx, id, fn, false)
}

func (h *Host) inspect(ctx context.Context, id route.ObjectID, fn func(o *store.Object) error, reset bool) error {
	var fnErr error
	m := &Msg{Ctx: ctx, System: true, Lazy: true, Operator: true, done: make(chan Reply, 1), chain: h.newChain(),
		Work: func(ctx context.Context, _ any) (any, error) {
			ts := turnFrom(ctx)
			if err := ts.a.Do(ts.gen, func(o *store.Object) error { fnErr = fn(o); return nil }); err != nil {
				return nil, err
			}
			if reset && fnErr == nil {
				ts.resetReason = errors.New("durable: the object's storage was deleted by an operator")
			}
			return nil, nil
		}}
	h.traced(m, "operator", "inspect")
	if _, err := h.serve(ctx, &route.Envelope{To: id, Local: m}); err != nil {
		return err
	}
	select {
	case r := <-m.done:
		if err := r.P.Wait(ctx); err != nil {
			return err
		}
		if r.Err != nil {
			return r.Err
		}
		return fnErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pause makes calls to an object fail at once with a retryable error until
// Resume (an operator's action); turns already queued or running go on,
// and system events (alarms, WebSocket events) still run.
func (h *Host) Pause(id route.ObjectID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.paused == nil {
		h.paused = map[route.ObjectID]bool{}
	}
	h.paused[id] = true
}

// Resume undoes Pause.
func (h *Host) Resume(id route.ObjectID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.paused, id)
}

// Paused reports whether an object is paused.
func (h *Host) Paused(id route.ObjectID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.paused[id]
}

// Wipe deletes an object's storage (its tables, KV entries and alarm) as
// a turn of the object; its instance, built on what is gone, is reset
// after that turn.
func (h *Host) Wipe(ctx context.Context, id route.ObjectID) error {
	return h.inspect(ctx, id, func(o *store.Object) error { return o.DeleteAll() }, true)
}

// Evict asks a live object's driver to retire its instance as soon as its
// mailbox is empty (an operator's action); it reports whether the object
// was live. Its WebSockets stay open, as when it hibernates.
func (h *Host) Evict(id route.ObjectID) bool {
	h.mu.Lock()
	a := h.live[id]
	h.mu.Unlock()
	if a == nil {
		return false
	}
	select {
	case a.evictCh <- struct{}{}:
	default: // already asked
	}
	return true
}

// overloadLogEvery bounds the overload log lines: one per namespace per
// second at most, with the count refused since the last.
const overloadLogEvery = time.Second

// logOverload logs a burst of calls refused for full mailboxes, once a
// second at most per namespace.
func (h *Host) logOverload(class *Class, id route.ObjectID) {
	n := class.refused.Add(1)
	now := time.Now().UnixNano()
	last := class.lastOverloadLog.Load()
	if now-last < int64(overloadLogEvery) || !class.lastOverloadLog.CompareAndSwap(last, now) {
		return
	}
	class.refused.Add(-n)
	args := []any{"namespace", id.Namespace, "id", id.ID, "refused", n}
	if last != 0 {
		args = append(args, "since", time.Duration(now-last).Round(time.Millisecond))
	}
	h.log.Warn("durable: calls refused: the object's mailbox is full (overloaded); spread the load over more objects", args...)
}
