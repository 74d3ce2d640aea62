package durable

import (
	"context"
	"fmt"
	"time"

	"github.com/durable-go/durable/internal/hooks"
	"github.com/durable-go/durable/internal/store"
)

// Alarmer is implemented by a class that handles alarms: Alarm runs as a
// turn when the object's alarm comes due, serial with every other turn and
// under the same output gate.
//
// Delivery is at least once: the alarm is cleared only when the alarm turn
// commits after Alarm returned. Alarm may call other objects (each call
// commits its writes so far; a crash after that runs it again). While
// Alarm runs, GetAlarm reports none; an alarm it sets is kept. If Alarm
// returns an error or panics, its writes since its last call out roll back
// (an alarm set in them too) and it is retried after 2, 4, 8, 16, 32 and
// 64 s (Config.AlarmRetryBase doubling); after the sixth retry fails the
// alarm is deleted and an error logged. An alarm set before a call out of
// a failing Alarm replaces the retries. Handlers must be idempotent: a
// crash before the alarm turn commits runs it again.
type Alarmer interface {
	Alarm(ctx context.Context, info AlarmInfo) error
}

// AlarmInfo describes an alarm delivery: RetryCount is 0 on the first
// attempt and counts the retries after failures.
type AlarmInfo struct {
	RetryCount int
	IsRetry    bool
}

// SetAlarm sets the object's alarm, replacing any: one alarm per object.
// Times are kept in milliseconds, rounded up (an alarm never fires before
// the time asked); a time in the past fires promptly. Setting is part of
// the turn's transaction and rolls back with it. It is an error for a class
// that does not implement Alarmer.
func (s *Storage) SetAlarm(t time.Time) error {
	if !s.alarmer {
		return &Error{Message: fmt.Sprintf("durable: SetAlarm: %s does not implement durable.Alarmer", s.className), Err: ErrNotImplemented}
	}
	ns := t.UnixNano()
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++ // round up: never early
	}
	return publicErrorOrNil(s.a.SetAlarm(s.gen, ms))
}

// GetAlarm returns the object's alarm time (UTC), if one is set.
func (s *Storage) GetAlarm() (time.Time, bool, error) {
	at, ok, err := s.a.GetAlarm(s.gen)
	if err != nil || !ok {
		return time.Time{}, false, publicErrorOrNil(err)
	}
	return time.UnixMilli(at).UTC(), true, nil
}

// DeleteAlarm removes the object's alarm, if any (part of the turn's
// transaction). It does not stop a handler already running.
func (s *Storage) DeleteAlarm() error {
	return s.do(func(o *store.Object) error { return o.DeleteAlarmRecord() })
}

func init() {
	hooks.RunAlarm = func(ctx context.Context, stub any) (bool, error) {
		type runner interface {
			runAlarm(ctx context.Context) (bool, error)
		}
		return stub.(runner).runAlarm(ctx)
	}
}

// runAlarm runs the object's alarm now (durabletest.RunAlarm).
func (s *Stub[T]) runAlarm(ctx context.Context) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	ran, err := s.ns.rt.host.RunAlarm(ctx, s.oid)
	return ran, publicErrorOrNil(err)
}
