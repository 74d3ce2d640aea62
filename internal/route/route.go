// Package route holds two of the cluster seams (DESIGN.md §4): Placement,
// which decides which node may host an object, and Transport, which
// delivers a call to that node. Single-node mode uses the local versions
// here: this node owns everything, and a call is a direct function call.
package route

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ObjectID names an object across the cluster.
type ObjectID struct{ Namespace, ID string }

// NodeID names a node.
type NodeID string

// ErrNotOwner is returned (wrapped by *NotOwnerError) when another node
// hosts the object.
var ErrNotOwner = errors.New("route: not the owner")

// NotOwnerError names the node that owns the object.
type NotOwnerError struct{ Owner NodeID }

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("route: object is owned by node %q", e.Owner)
}
func (e *NotOwnerError) Unwrap() error { return ErrNotOwner }

// Placement decides who may host an object.
type Placement interface {
	// Acquire makes this node the object's host, or fails with a
	// *NotOwnerError naming the owner.
	Acquire(ctx context.Context, id ObjectID) (Grant, error)
	// Owner returns the object's host (possibly stale).
	Owner(ctx context.Context, id ObjectID) (NodeID, error)
}

// Grant is this node's right to host one object.
type Grant interface {
	Epoch() uint64
	// ReadDeadline is when the grant may have lapsed; serving reads after
	// it is unsafe.
	ReadDeadline() time.Time
	// Lost is closed when the activation must stop at once (lease lost,
	// fenced by a newer writer).
	Lost() <-chan struct{}
	Release(ctx context.Context) error
}

// Envelope is a call on its way to an object. Local carries the in-process
// form of the call and never leaves the process; Method and Arg are the
// wire form a remote node would use.
type Envelope struct {
	To     ObjectID
	Method string
	Chain  uint64
	Arg    []byte
	Local  any
}

// Transport delivers envelopes to the owner node.
type Transport interface {
	Call(ctx context.Context, to NodeID, req *Envelope) (any, error)
	Serve(ctx context.Context, h Handler) error
}

// Handler serves an envelope on the owner node.
type Handler func(ctx context.Context, req *Envelope) (any, error)

// Self is the node ID of single-node mode.
const Self NodeID = "local"

// Local is the single-node Placement: this node owns every object, and each
// activation gets the next epoch of a process-wide counter.
type Local struct{ epoch atomic.Uint64 }

// Acquire always succeeds.
func (l *Local) Acquire(ctx context.Context, id ObjectID) (Grant, error) {
	return localGrant{epoch: l.epoch.Add(1)}, nil
}

// Owner is always this node.
func (l *Local) Owner(ctx context.Context, id ObjectID) (NodeID, error) { return Self, nil }

type localGrant struct{ epoch uint64 }

var never = make(chan struct{}) // a Lost channel that never closes

func (g localGrant) Epoch() uint64                     { return g.epoch }
func (g localGrant) ReadDeadline() time.Time           { return time.Time{} }
func (g localGrant) Lost() <-chan struct{}             { return never }
func (g localGrant) Release(ctx context.Context) error { return nil }

// LocalTransport hands every envelope to the handler served in this
// process, as a direct call.
type LocalTransport struct{ h atomic.Pointer[Handler] }

// ErrNoHandler: Call before Serve.
var ErrNoHandler = errors.New("route: no handler is serving")

// Call runs the served handler on the caller's goroutine.
func (t *LocalTransport) Call(ctx context.Context, to NodeID, req *Envelope) (any, error) {
	h := t.h.Load()
	if h == nil {
		return nil, ErrNoHandler
	}
	return (*h)(ctx, req)
}

// Serve installs h and returns at once (the local transport needs no
// goroutine); ctx is unused.
func (t *LocalTransport) Serve(ctx context.Context, h Handler) error {
	t.h.Store(&h)
	return nil
}
