package host

import (
	"context"
	"time"

	"github.com/durable-go/durable/internal/alarm"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/store"
)

// Alarm limits (the platform's: spec AL-7, LIM-36, LIM-38).
const (
	MaxAlarmRetries  = 6
	AlarmTurnTimeout = 15 * time.Minute
)

// SetAlarm records the object's alarm at atMs (Unix ms) in its storage,
// within the current turn. The index entry is written and made durable
// first: the record can reach the disk (or, after a SIGKILL, the page
// cache) only once the entry is there, so an object with a record always
// has an entry and its alarm is never lost. The wait is one sync round of
// the index, which other turns share.
func (a *Activation) SetAlarm(gen uint64, atMs int64) error {
	// The wait ends with the turn (its context is cancelled when the turn
	// ends, and when a fence or Close interrupts it).
	ctx := context.Background()
	if ts := a.current; ts != nil && ts.ctx != nil {
		ctx = ts.ctx
	}
	if err := a.h.alarms.Set(a.id.Namespace, a.id.ID, atMs).Wait(ctx); err != nil {
		return err
	}
	err := a.Do(gen, func(o *store.Object) error {
		if err := o.SetAlarmRecord(atMs, 0); err != nil {
			return err
		}
		if a.firing.on { // guarded by smu, which Do holds
			a.firing.set = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if nm := a.class.Metrics; nm != nil {
		nm.AlarmsSet.Inc()
	}
	if ts := a.current; ts != nil && ts.active.Load() {
		ts.mu.Lock()
		ts.alarmSetMs = atMs
		ts.mu.Unlock()
	}
	return nil
}

// firingAlarm is the alarm whose handler is running: its record stays
// until the handler succeeds (at least once), but GetAlarm reports none
// meanwhile (spec AL-2).
type firingAlarm struct {
	at      int64
	retries int
	on      bool
	set     bool // an alarm was set on the object while the handler ran
}

// GetAlarm returns the object's alarm time, none while its handler runs
// (unless a new one was set).
func (a *Activation) GetAlarm(gen uint64) (atMs int64, ok bool, err error) {
	err = a.Do(gen, func(o *store.Object) error {
		at, n, has, err := o.AlarmRecord()
		if err != nil || !has {
			return err
		}
		if f := a.firing; f.on && !f.set && f.at == at && f.retries == n {
			return nil // guarded by smu, which Do holds
		}
		atMs, ok = at, true
		return nil
	})
	return atMs, ok, err
}

// setFiring marks (or, with on false, unmarks) the alarm whose handler
// runs, and returns the mark it replaced.
func (a *Activation) setFiring(f firingAlarm) firingAlarm {
	a.smu.Lock()
	defer a.smu.Unlock()
	prev := a.firing
	a.firing = f
	return prev
}

// fireAlarm starts the alarm turn of an index entry (on the scheduler's
// goroutine: it must not block).
func (h *Host) fireAlarm(e alarm.Entry) error {
	h.mu.Lock()
	_, defined := h.classes[e.NS]
	h.mu.Unlock()
	if !defined {
		return alarm.ErrUndefined
	}
	m := h.traced(&Msg{Work: h.alarmWork(false), System: true, Lazy: true, chain: h.newChain()}, "alarm", "alarm")
	m.onReply = func(r Reply) {
		if r.Err != nil {
			h.alarms.Done(alarm.Outcome{Entry: e, Kind: alarm.Retry})
			return
		}
		res, _ := r.V.(alarmResult)
		r.P.OnDone(func(err error) {
			if err != nil {
				h.alarms.Done(alarm.Outcome{Entry: e, Kind: alarm.Retry})
				return
			}
			h.alarms.Done(alarm.Outcome{Entry: e, Kind: res.kind, AtMs: res.atMs})
		})
	}
	_, err := h.serve(context.Background(), &route.Envelope{To: route.ObjectID{Namespace: e.NS, ID: e.ID}, Local: m})
	return err
}

// alarmResult is what an alarm turn did: the alarm.Kind for the index and,
// for a reschedule, the object's alarm time; ran reports whether the
// handler ran.
type alarmResult struct {
	kind alarm.Kind
	atMs int64
	ran  bool
}

// alarmWork is an alarm turn. It reads the object's record first: no
// record, or (unless force) one not due yet, and the handler does not run.
// Otherwise it runs the handler with the record left in place: the handler
// may call other objects (each call commits the turn's writes so far at a
// durability point, the record still among them, so a crash then runs the
// alarm again: at least once). If the handler succeeds, the record is
// cleared in the turn's last segment, unless it changed meanwhile (the
// handler, or a call let in while it waited, set another alarm). If it
// fails, its writes since its last durability point roll back and the
// retry is recorded (or the alarm dropped after the last), unless the
// record changed: a new alarm replaces the retries (spec AL-8).
func (h *Host) alarmWork(force bool) Work {
	return func(ctx context.Context, _ any) (any, error) {
		ts := turnFrom(ctx)
		a := ts.a
		var atMs int64
		var retries int
		var ok bool
		if err := a.Do(ts.gen, func(o *store.Object) (err error) {
			atMs, retries, ok, err = o.AlarmRecord()
			return err
		}); err != nil {
			return nil, err
		}
		if !ok {
			return alarmResult{kind: alarm.Stale}, nil
		}
		now := h.cfg.Clock.Now().UnixMilli()
		if atMs > now && !force {
			return alarmResult{kind: alarm.Reschedule, atMs: atMs}, nil
		}
		inst, err := a.Instance(ctx)
		if err != nil {
			// The object cannot be built: count it as a failed attempt.
			return h.alarmFailed(a, ts, retries, now, err)
		}
		if a.class.Alarm == nil {
			h.log.Error("durable: an alarm is set but the class does not implement Alarmer; dropping it",
				"namespace", a.id.Namespace, "id", a.id.ID)
			err := a.Do(ts.gen, func(o *store.Object) error { return o.DeleteAlarmRecord() })
			return alarmResult{kind: alarm.Cleared}, err
		}
		if nm := a.class.Metrics; nm != nil {
			nm.AlarmsFired.Inc()
			nm.AlarmLateness.ObserveDuration(h.cfg.Clock.Now().Sub(time.UnixMilli(atMs)))
		}
		hctx, cancel := context.WithTimeout(ctx, AlarmTurnTimeout)
		a.setFiring(firingAlarm{at: atMs, retries: retries, on: true})
		_, herr, how := a.protect(func() (any, error) {
			return nil, a.class.Alarm(hctx, inst, AlarmInfo{RetryCount: retries, IsRetry: retries > 0})
		})
		setDuring := a.setFiring(firingAlarm{}).set
		cancel()
		if herr != nil && how != returned {
			ts.resetReason = herr // a panic or Abort: the instance goes after the turn
		}
		ts.mu.Lock()
		detached := ts.outgoing > 0
		ts.mu.Unlock()
		if detached {
			// The handler returned with calls still out: the turn's storage
			// is closed at their durability point. The record is settled in
			// a turn of its own; until then it stays (at least once).
			err := h.Post(a.id, func(ctx context.Context, _ any) (any, error) {
				ts := turnFrom(ctx)
				_, err := h.alarmSettle(ts.a, ts, atMs, retries, now, herr, setDuring, false)
				return nil, err
			}, nil)
			return alarmResult{kind: alarm.Kept, ran: true}, err
		}
		return h.alarmSettle(a, ts, atMs, retries, now, herr, setDuring, true)
	}
}

// alarmSettle settles the record after the handler of the alarm that fired
// at atMs (after retries) ran: herr is its error; setDuring says an alarm
// was set on the object while it ran (by it, or by a call let in while it
// waited); rollback says the handler's writes since its last durability
// point are still open and roll back if it failed.
//
// Success: the record is deleted, unless an alarm was set meanwhile or it
// changed. Failure: a retry is recorded (through the index, so the index
// entry is never later than the record), or the alarm dropped after the
// last; unless the record changed: a new alarm committed before a call
// replaces the retries (AL-8), and one deleted prevents them (AL-4).
func (h *Host) alarmSettle(a *Activation, ts *turnState, atMs int64, retries int, now int64, herr error, setDuring, rollback bool) (any, error) {
	if herr != nil && rollback {
		if err := a.rollbackSegment(ts, herr); err != nil {
			return nil, err
		}
	}
	var at int64
	var n int
	var ok bool
	if err := a.Do(ts.gen, func(o *store.Object) (err error) {
		at, n, ok, err = o.AlarmRecord()
		return err
	}); err != nil {
		return nil, err
	}
	unchanged := ok && at == atMs && n == retries
	switch {
	case !ok:
		return alarmResult{kind: alarm.Cleared, ran: true}, nil
	case herr != nil && unchanged:
		return h.alarmFailed(a, ts, retries, now, herr)
	case herr != nil, !unchanged, setDuring:
		// Its own time (a Set wrote an entry at it, or the entry moves).
		return alarmResult{kind: alarm.Reschedule, atMs: at, ran: true}, nil
	}
	err := a.Do(ts.gen, func(o *store.Object) error { return o.DeleteAlarmRecord() })
	return alarmResult{kind: alarm.Cleared, ran: true}, err
}

// rollbackSegment rolls back the turn's writes since its last durability
// point (a failed alarm handler's) and drops what it sent meanwhile; the
// turn goes on in a new segment.
func (a *Activation) rollbackSegment(ts *turnState, cause error) error {
	a.smu.Lock()
	defer a.smu.Unlock()
	if a.gen != ts.gen || a.dead || a.obj == nil {
		return resetError("the instance was reset")
	}
	if _, err := a.obj.End(cause); err != nil && err != cause {
		a.endSegLocked(nil, err)
		return err
	}
	a.endSegLocked(nil, cause)
	if err := a.obj.Begin(); err != nil {
		return err
	}
	a.beganSegLocked()
	return nil
}

// alarmFailed records the next retry of a failed alarm, or drops it after
// the last.
func (h *Host) alarmFailed(a *Activation, ts *turnState, retries int, now int64, cause error) (any, error) {
	next := retries + 1
	nm := a.class.Metrics
	if next > MaxAlarmRetries {
		if nm != nil {
			nm.AlarmsDropped.Inc()
		}
		h.log.Error("durable: alarm dropped after its last retry failed",
			"namespace", a.id.Namespace, "id", a.id.ID, "retries", MaxAlarmRetries, "err", cause)
		err := a.Do(ts.gen, func(o *store.Object) error { return o.DeleteAlarmRecord() })
		return alarmResult{kind: alarm.Cleared, ran: true}, err
	}
	at := now + (h.cfg.AlarmRetryBase << (next - 1)).Milliseconds()
	if nm != nil {
		nm.AlarmsRetried.Inc()
	}
	h.log.Warn("durable: alarm handler failed; retrying", "namespace", a.id.Namespace, "id", a.id.ID,
		"retry", next, "at", time.UnixMilli(at).UTC(), "err", cause)
	// The retry gets an index entry of its own before its record, as
	// SetAlarm does: the fired entry may be gone (a call let in while the
	// handler waited deleted the alarm, then set it) or superseded by an
	// entry a rolled-back SetAlarm wrote later than the retry.
	if err := h.alarms.Set(a.id.Namespace, a.id.ID, at).Wait(ts.ctx); err != nil {
		return nil, err
	}
	err := a.Do(ts.gen, func(o *store.Object) error { return o.SetAlarmRecord(at, next) })
	return alarmResult{kind: alarm.Kept, atMs: at, ran: true}, err
}

// RunAlarm runs the object's alarm now, due or not, as a successful alarm
// turn would, and reports whether it had one (durabletest.RunAlarm).
func (h *Host) RunAlarm(ctx context.Context, id route.ObjectID) (bool, error) {
	v, err := h.callWork(ctx, id, h.traced(&Msg{Work: h.alarmWork(true), Lazy: true}, "alarm", "alarm"))
	if err != nil {
		return false, err
	}
	res, _ := v.(alarmResult)
	if res.kind == alarm.Reschedule {
		// Move the index entry to the record's time (it may be later).
		if err := h.alarms.Set(id.Namespace, id.ID, res.atMs).Wait(ctx); err != nil {
			return res.ran, err
		}
	}
	return res.ran, nil
}

// callWork delivers m like a call and waits for its reply and durability.
func (h *Host) callWork(ctx context.Context, id route.ObjectID, m *Msg) (any, error) {
	m.Ctx, m.done, m.chain = ctx, make(chan Reply, 1), h.newChain()
	if _, err := h.serve(ctx, &route.Envelope{To: id, Local: m}); err != nil {
		return nil, err
	}
	select {
	case r := <-m.done:
		if err := r.P.Wait(ctx); err != nil {
			return nil, err
		}
		return r.V, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// AlarmStats returns the alarm scheduler's counters.
func (h *Host) AlarmStats() alarm.Stats { return h.alarms.Stats() }
