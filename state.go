package durable

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/id"
)

// State is what an object's constructor receives: the object's identity,
// its storage, and the runtime's controls over its instance. Keep it in the
// object.
type State struct {
	rt        *Runtime
	wsHandler bool // the class implements WebSocketHandler
	a         *host.Activation
	gen       uint64 // the instance generation this State belongs to
	key       id.Key
	idBytes   [id.Size]byte
	storage   *Storage
}

func newState(rt *Runtime, a *host.Activation, key id.Key, c classInfo) *State {
	gen := a.Gen()
	s := &State{rt: rt, wsHandler: c.wsHandler, a: a, gen: gen, key: key, storage: &Storage{a: a, gen: gen, alarmer: c.alarmer, className: c.name}}
	hex.Decode(s.idBytes[:], []byte(a.ID().ID))
	return s
}

// classInfo is what the runtime knows of an object's class.
type classInfo struct {
	name      string
	alarmer   bool // implements Alarmer
	wsHandler bool // implements WebSocketHandler
}

// ID returns the object's ID. Its Name is the object's name whenever the
// object was ever addressed by name (the name is kept in its storage).
func (s *State) ID() ID { return ID{b: s.idBytes, name: s.a.Name()} }

// Storage returns the object's storage.
func (s *State) Storage() *Storage { return s.storage }

// BlockConcurrencyWhile runs fn with nothing else delivered to the object
// until it returns (not even a call back on the current call chain); call
// it from the constructor or a method. It returns fn's error unchanged. An
// error from fn, or a run longer than 30 s, resets the instance after the
// turn: after an overrun its storage is fenced at once (calls fail with
// ErrObjectReset) and the returned *Error says so.
func (s *State) BlockConcurrencyWhile(fn func(ctx context.Context) error) error {
	return publicErrorOrNil(s.a.BlockConcurrencyWhile(fn))
}

// WaitUntil runs fn as its own turn after the current one (at most 15
// minutes) and keeps the instance alive until it ends. An Abort or a panic
// in fn resets the instance.
func (s *State) WaitUntil(fn func(ctx context.Context)) {
	if err := s.a.WaitUntil(fn); err != nil {
		s.a.Host().Logger().Warn("durable: WaitUntil dropped", "namespace", s.a.ID().Namespace, "id", s.a.ID().ID, "err", err)
	}
}

// Abort ends the current turn at once and does not return: its writes since
// the last durability point roll back, the caller gets a retryable *Error
// wrapping ErrObjectReset whose message contains reason, and the instance is
// reset (the next event constructs a new one). Abort unwinds by a panic
// with a value only the runtime recognises: code that recovers panics must
// re-panic values it does not own.
func (s *State) Abort(reason string) { host.Abort(reason) }

// publicErrorOrNil keeps an error of the user's own (from fn) as it is and
// converts the runtime's.
func publicErrorOrNil(err error) error {
	var ce *errs.Call
	if err != nil && errors.As(err, &ce) {
		return publicError(err)
	}
	return err
}
