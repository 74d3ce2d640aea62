// Package errs holds the error sentinels shared by durable's internal
// packages. The root package re-exports them as durable.Err…, so errors.Is
// works the same on both sides of the API.
package errs

import "errors"

var (
	// ErrLocked: the data directory is held by another open Runtime.
	ErrLocked = errors.New("durable: data directory is locked by another runtime")
	// ErrOverloaded: the object's mailbox is full; do not retry blindly.
	ErrOverloaded = errors.New("durable: object is overloaded: too many requests queued")
	// ErrObjectReset: the object's in-memory instance was discarded (a failed
	// commit or sync, a panic, Abort); persisted data is intact up to its
	// last durable commit. Retryable.
	ErrObjectReset = errors.New("durable: object was reset")
	// ErrInvalidID: an ID string is malformed or belongs to another namespace.
	ErrInvalidID = errors.New("durable: invalid object ID")
	// ErrLimit: a documented limit was exceeded; the message names it.
	ErrLimit = errors.New("durable: limit exceeded")
	// ErrNotImplemented: the class lacks the handler or method asked for.
	ErrNotImplemented = errors.New("durable: not implemented")
	// ErrClosed: the runtime (or store) is closed.
	ErrClosed = errors.New("durable: closed")
	// ErrWebSocketClosed: a send or close on a WebSocket that is closing
	// or closed.
	ErrWebSocketClosed = errors.New("durable: the WebSocket is closed")
)

// sentinels are the errors carried across a call by code, so errors.Is
// works on the caller's side; any other error arrives as its message only.
var sentinels = []error{ErrLocked, ErrOverloaded, ErrObjectReset, ErrInvalidID, ErrLimit, ErrNotImplemented, ErrClosed, ErrWebSocketClosed}

// Sentinel returns the durable sentinel err wraps, or nil.
func Sentinel(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return nil
}

// Call is an error of a call into an object, with the flags the public
// *durable.Error carries. The root package converts it.
type Call struct {
	Message    string
	Retryable  bool
	Overloaded bool
	Remote     bool
	Err        error // a sentinel, or nil
}

func (e *Call) Error() string { return e.Message }
func (e *Call) Unwrap() error { return e.Err }

// Remote turns an object's own error into the caller's copy of it: the
// message, and the sentinel it wraps (if any) so errors.Is still works.
func Remote(err error) *Call {
	s := Sentinel(err)
	return &Call{Message: err.Error(), Remote: true, Err: s, Retryable: s == ErrObjectReset}
}
