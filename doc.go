// Package durable runs Durable Objects in Go, on your own machines.
//
// An application holds any number of small stateful objects. Each object
// has an ID (derived from a name, or random), runs one turn at a time, and
// owns a private transactional SQLite database. Front code calls objects by
// typed RPC or HTTP through stubs; the runtime constructs an object on its
// first event, evicts it when idle, and rebuilds it on the next.
//
// # Defining a class
//
// A class is a pointer type with a constructor that receives the object's
// *State:
//
//	type Counter struct{ st *durable.State }
//
//	func NewCounter(st *durable.State) (*Counter, error) { return &Counter{st: st}, nil }
//
//	func (c *Counter) Increment(ctx context.Context, by int64) (int64, error) {
//		var n int64
//		c.st.Storage().Get("n", &n)
//		n += by
//		return n, c.st.Storage().Put("n", n)
//	}
//
// RPC methods are exported with the shape func(ctx, arg) (result, error) or
// func(ctx) (result, error). Arguments and results are copied (encoded),
// never shared: anything encoding/json round-trips will do.
//
// # Calling objects
//
//	rt, err := durable.Open(durable.Config{Dir: "data"})
//	defer rt.Close(ctx)
//	counters := durable.Define(rt, "COUNTER", NewCounter)
//	n, err := durable.Call(ctx, counters.GetByName("alice"), (*Counter).Increment, int64(1))
//
// A class that implements http.Handler also receives Stub.Fetch and
// Stub.ServeHTTP requests.
//
// # Turns and the output gate
//
// Turns never interleave: the next turn starts when the previous one ended
// (a call back into an object waiting on an outgoing call, on the same call
// chain, is the one exception: A→B→A completes). Each turn's writes, SQL
// and KV alike, commit atomically when it ends; a turn that fails (an
// error, a panic, Abort) rolls back. Nothing a turn sends out — a result, a
// response, a message — leaves before the writes it could have seen are
// durable on disk. An outgoing call or a flush of a streaming response is
// a durability point: the writes so far commit and become durable first,
// and a later failure rolls back only what follows.
//
// Durability is coalesced: the turns of a busy object share one commit,
// and the commits of many objects share one sync, so an object runs far
// faster than one fsync per write while every acknowledged write survives
// a crash or a power loss.
//
// # Errors
//
// Calls fail with *Error; its flags say whether the error came from the
// object's code (Remote), whether retrying is safe (Retryable) and whether
// the object is overloaded (Overloaded). errors.Is matches the sentinels
// ErrObjectReset, ErrOverloaded, ErrInvalidID, ErrLimit, ErrNotImplemented,
// ErrClosed and ErrLocked through it.
//
// Package durabletest has helpers for tests: a runtime on a temporary
// directory, a fake clock, and running code inside an object.
package durable
