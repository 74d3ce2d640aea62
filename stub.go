package durable

import (
	"context"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"

	"github.com/durable-go/durable/internal/codec"
	"github.com/durable-go/durable/internal/hooks"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/route"
)

// Stub addresses one object. It is cheap, safe for concurrent use, and
// never breaks: after an error or a reset, the next call goes to a fresh
// instance. Calls made through one stub run in the order they were
// enqueued.
type Stub[T any] struct {
	ns  *Namespace[T]
	id  ID
	oid route.ObjectID
	err error // the ID is not valid for the namespace
}

// ID returns the object's ID.
func (s *Stub[T]) ID() ID { return s.id }

// Call calls a method of the object: method is a method expression of T,
// such as (*Counter).Increment. The argument and the result are copied
// (encoded), never shared. The method's ctx derives from ctx: it carries the
// call chain (a call back into a waiting caller on the same chain re-enters
// it) and is cancelled with ctx; a call whose ctx ends while it is still
// queued never runs. A method's error arrives as a *Error with Remote set.
//
// Called from inside a turn (with the turn's ctx), Call is an outgoing call:
// the turn's writes so far commit and become durable before it leaves, and
// a later failure of the turn rolls back only what follows. A turn may make
// several calls in parallel; calls it leaves running when it returns are
// cancelled with its ctx. Calls inside Storage.Transaction are refused.
func Call[T, A, R any](ctx context.Context, s *Stub[T], method func(T, context.Context, A) (R, error), arg A) (R, error) {
	var zero R
	name, err := s.check(method)
	if err != nil {
		return zero, err
	}
	in, err := codec.Marshal(arg)
	if err != nil {
		return zero, &Error{Message: fmt.Sprintf("durable: %s: encode the argument: %v", name, err)}
	}
	v, err := s.ns.rt.host.Call(ctx, s.oid, s.id.name, name, in, func(ctx context.Context, inst any) (any, error) {
		var a A
		if err := codec.Unmarshal(in, &a); err != nil {
			return nil, fmt.Errorf("durable: %s: decode the argument: %w", name, err)
		}
		r, err := method(inst.(T), ctx, a)
		if err != nil {
			return nil, err
		}
		return encodeResult(name, r)
	})
	if err != nil {
		return zero, publicError(err)
	}
	return decodeResult[R](name, v)
}

// Call0 calls a method of the object that takes no argument.
func Call0[T, R any](ctx context.Context, s *Stub[T], method func(T, context.Context) (R, error)) (R, error) {
	var zero R
	name, err := s.check(method)
	if err != nil {
		return zero, err
	}
	v, err := s.ns.rt.host.Call(ctx, s.oid, s.id.name, name, nil, func(ctx context.Context, inst any) (any, error) {
		r, err := method(inst.(T), ctx)
		if err != nil {
			return nil, err
		}
		return encodeResult(name, r)
	})
	if err != nil {
		return zero, publicError(err)
	}
	return decodeResult[R](name, v)
}

// check validates the stub and resolves the method's name.
func (s *Stub[T]) check(method any) (string, error) {
	if s.err != nil {
		return "", s.err
	}
	m, err := s.ns.methodOf(method)
	if err != nil {
		return "", &Error{Message: err.Error(), Err: ErrNotImplemented}
	}
	if m.calls != nil {
		m.calls.IncAt(metrics.StripeOf(s.oid.ID))
	}
	return m.name, nil
}

func encodeResult[R any](name string, r R) (any, error) {
	b, err := codec.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("durable: %s: encode the result: %w", name, err)
	}
	return b, nil
}

func decodeResult[R any](name string, v any) (R, error) {
	var r R
	b, _ := v.([]byte)
	if err := codec.Unmarshal(b, &r); err != nil {
		return r, &Error{Message: fmt.Sprintf("durable: %s: decode the result: %v", name, err)}
	}
	return r, nil
}

func init() {
	hooks.RunInObject = func(ctx context.Context, stub any, fn func(obj, state any)) error {
		type runner interface {
			runIn(ctx context.Context, fn func(obj, state any)) error
		}
		return stub.(runner).runIn(ctx, fn)
	}
}

// runIn runs fn inside the object, as a turn (durabletest.RunInObject).
func (s *Stub[T]) runIn(ctx context.Context, fn func(obj, state any)) error {
	if s.err != nil {
		return s.err
	}
	_, err := s.ns.rt.host.Call(ctx, s.oid, s.id.name, "", nil, func(ctx context.Context, inst any) (any, error) {
		a := host.ActivationFrom(ctx)
		fn(inst, a.State())
		return nil, nil
	})
	return publicError(err)
}
