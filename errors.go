package durable

import (
	"context"
	"errors"

	"github.com/durable-go/durable/internal/errs"
)

// Error is the error a call into an object returns (other than the
// caller's own context errors). Use errors.As to read its flags and
// errors.Is to match the sentinels it carries.
type Error struct {
	// Message says what happened.
	Message string
	// Retryable: a transient failure (the object was reset); retrying an
	// idempotent call is safe.
	Retryable bool
	// Overloaded: the object's mailbox is full. Do not retry blindly: it
	// deepens the overload.
	Overloaded bool
	// Remote: the error came from the object's own code (its method, its
	// constructor, a panic).
	Remote bool
	// Err is the durable sentinel the error carries, if any.
	Err error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel the error carries.
func (e *Error) Unwrap() error { return e.Err }

// Sentinels, for errors.Is.
var (
	// ErrLocked: Open was given a Dir another open Runtime holds.
	ErrLocked = errs.ErrLocked
	// ErrOverloaded: the object's mailbox is full (Error.Overloaded).
	ErrOverloaded = errs.ErrOverloaded
	// ErrObjectReset: the object's instance was reset (a panic, Abort, a
	// failed commit or sync); persisted data is intact. Retryable.
	ErrObjectReset = errs.ErrObjectReset
	// ErrInvalidID: an ID string is malformed or belongs to another
	// namespace.
	ErrInvalidID = errs.ErrInvalidID
	// ErrLimit: a documented limit was exceeded; the message names it.
	ErrLimit = errs.ErrLimit
	// ErrNotImplemented: the class lacks the handler or method asked for.
	ErrNotImplemented = errs.ErrNotImplemented
	// ErrClosed: the Runtime is closed.
	ErrClosed = errs.ErrClosed
	// ErrWebSocketClosed: a send on a WebSocket that is closing or
	// closed.
	ErrWebSocketClosed = errs.ErrWebSocketClosed
)

// publicError turns an internal error of a call into what the caller sees.
func publicError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	var ce *errs.Call
	if errors.As(err, &ce) {
		return &Error{Message: ce.Message, Retryable: ce.Retryable, Overloaded: ce.Overloaded, Remote: ce.Remote, Err: ce.Err}
	}
	s := errs.Sentinel(err)
	return &Error{Message: err.Error(), Retryable: s == errs.ErrObjectReset, Err: s}
}
