// Package gate is durable's output gate: nothing a turn sends out (a result,
// a response, a message) leaves before the writes it could have seen are
// durable.
//
// A Promise stands for "these writes are durable"; the storage engine
// resolves it when its sync returns (nil) or when the commit or sync failed
// (an error wrapping errs.ErrObjectReset). A Gate holds an object's outputs
// against promises and releases them in the order they were held.
package gate

import (
	"context"
	"sync"
)

// Promise becomes ready once: with nil when the writes it covers are
// durable, or with the error that lost them. The zero value is a pending
// promise; use New.
type Promise struct {
	mu   sync.Mutex
	done bool          // guarded by mu
	err  error         // guarded by mu; valid once done
	ch   chan struct{} // guarded by mu; made on demand by Done
	fns  []func(error) // guarded by mu; run once, in order, at Resolve
	tm   *Timing       // guarded by mu; recorded only when the store is asked to
}

// Timing is when the writes a promise covers were committed and made
// durable (Unix nanoseconds), for traces. The store records it only when
// tracing is on.
type Timing struct {
	CommitStart, CommitEnd int64
	Turns                  int // turns in the committed batch
	SyncStart, SyncEnd     int64
	Batches                int // batches the sync round made durable
}

// SetCommitted records when the promise's batch was committed.
func (p *Promise) SetCommitted(start, end int64, turns int) {
	p.mu.Lock()
	if p.tm == nil {
		p.tm = &Timing{}
	}
	p.tm.CommitStart, p.tm.CommitEnd, p.tm.Turns = start, end, turns
	p.mu.Unlock()
}

// ResolveSynced resolves the promise like Resolve, recording the sync
// round that made its writes durable (or failed) if its commit was
// recorded.
func (p *Promise) ResolveSynced(err error, start, end int64, batches int) {
	p.mu.Lock()
	if p.tm != nil && !p.done {
		p.tm.SyncStart, p.tm.SyncEnd, p.tm.Batches = start, end, batches
	}
	p.mu.Unlock()
	p.Resolve(err)
}

// FollowTiming makes p resolve as q does, with q's recorded timing: a
// batch that wrote nothing waited for q's writes, so q's commit and sync
// are what held its outputs.
func (p *Promise) FollowTiming(q *Promise) {
	q.OnDone(func(err error) {
		if tm, ok := q.Timing(); ok {
			p.mu.Lock()
			if !p.done {
				p.tm = &tm
			}
			p.mu.Unlock()
		}
		p.Resolve(err)
	})
}

// Timing returns what was recorded of the promise's commit and sync.
func (p *Promise) Timing() (Timing, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tm == nil {
		return Timing{}, false
	}
	return *p.tm, true
}

// New returns a pending promise.
func New() *Promise { return &Promise{} }

// Resolved returns a promise that is already ready with err.
func Resolved(err error) *Promise { return &Promise{done: true, err: err} }

// Resolve makes the promise ready with err (nil: durable). Only the first
// call counts; later calls are ignored. Callbacks registered with OnDone run
// on the caller's goroutine, in registration order.
func (p *Promise) Resolve(err error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done, p.err = true, err
	if p.ch != nil {
		close(p.ch)
	}
	fns := p.fns
	p.fns = nil
	p.mu.Unlock()
	for _, fn := range fns {
		fn(err)
	}
}

// Follow makes p resolve as q does (immediately if q is ready).
func (p *Promise) Follow(q *Promise) { q.OnDone(p.Resolve) }

// OnDone runs fn with the promise's error once it is ready: at once, on the
// caller's goroutine, if it already is; otherwise on the resolver's.
func (p *Promise) OnDone(fn func(error)) {
	p.mu.Lock()
	if p.done {
		err := p.err
		p.mu.Unlock()
		fn(err)
		return
	}
	p.fns = append(p.fns, fn)
	p.mu.Unlock()
}

// Ready reports whether the promise is ready and, if so, its error.
func (p *Promise) Ready() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done, p.err
}

// Done returns a channel closed when the promise is ready.
func (p *Promise) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		p.ch = make(chan struct{})
		if p.done {
			close(p.ch)
		}
	}
	return p.ch
}

// Wait blocks until the promise is ready or ctx ends, and returns the
// promise's error or ctx's.
func (p *Promise) Wait(ctx context.Context) error {
	if done, err := p.Ready(); done {
		return err
	}
	select {
	case <-p.Done():
		_, err := p.Ready()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// All returns a promise ready when every one of ps is: with nil if all
// succeeded, else with the first error (in argument order) among them.
func All(ps ...*Promise) *Promise {
	switch len(ps) {
	case 0:
		return Resolved(nil)
	case 1:
		return ps[0]
	}
	out := New()
	var mu sync.Mutex
	left := len(ps)
	errsAt := make([]error, len(ps))
	for i, p := range ps {
		p.OnDone(func(err error) {
			mu.Lock()
			errsAt[i] = err
			left--
			done := left == 0
			mu.Unlock()
			if done {
				for _, e := range errsAt {
					if e != nil {
						out.Resolve(e)
						return
					}
				}
				out.Resolve(nil)
			}
		})
	}
	return out
}
