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
	err := a.Do(gen, func(o *store.Object) error { return o.SetAlarmRecord(atMs, 0) })
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
// Otherwise it clears the record, runs the handler inside a savepoint and,
// if the handler fails, rolls the handler's writes back and records the
// retry (or drops the alarm after the last). The turn itself commits: the
// alarm is cleared only when it does.
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
		if err := a.Do(ts.gen, func(o *store.Object) error {
			if err := o.DeleteAlarmRecord(); err != nil {
				return err
			}
			return o.TxBegin()
		}); err != nil {
			return nil, err
		}
		if nm := a.class.Metrics; nm != nil {
			nm.AlarmsFired.Inc()
			nm.AlarmLateness.ObserveDuration(h.cfg.Clock.Now().Sub(time.UnixMilli(atMs)))
		}
		hctx, cancel := context.WithTimeout(ctx, AlarmTurnTimeout)
		_, herr, how := a.protect(func() (any, error) {
			return nil, a.class.Alarm(hctx, inst, AlarmInfo{RetryCount: retries, IsRetry: retries > 0})
		})
		cancel()
		if herr != nil {
			if how != returned {
				ts.resetReason = herr // a panic or Abort: the instance goes after the turn
			}
			if err := a.Do(ts.gen, func(o *store.Object) error { return o.TxEnd(false) }); err != nil {
				return nil, err
			}
			return h.alarmFailed(a, ts, retries, now, herr)
		}
		res := alarmResult{kind: alarm.Cleared, ran: true}
		// Read under the turn's lock here, never inside a.Do: the storage
		// lock is taken after the turn's lock elsewhere (suspend, point).
		ts.mu.Lock()
		setMs := ts.alarmSetMs
		ts.mu.Unlock()
		setInHandler := setMs != 0
		err = a.Do(ts.gen, func(o *store.Object) error {
			if err := o.TxEnd(true); err != nil {
				return err
			}
			if !setInHandler {
				return nil // the record was cleared above and nothing set it again
			}
			at, _, ok, err := o.AlarmRecord()
			if ok {
				res = alarmResult{kind: alarm.Reschedule, atMs: at, ran: true}
				if setMs == at {
					res.kind = alarm.Kept // the handler's SetAlarm wrote the entry
				}
			}
			return err
		})
		return res, err
	}
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
	err := a.Do(ts.gen, func(o *store.Object) error { return o.SetAlarmRecord(at, next) })
	return alarmResult{kind: alarm.Reschedule, atMs: at, ran: true}, err
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
