package durable_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Alarm scenarios a review provoked (interleaved calls while a handler
// waits, rolled-back SetAlarm, detached calls, unread errors), each once a
// bug. AlarmA's alarm is under test; AlarmB is called from its handler and
// calls back into it.

// AlarmA is the object whose alarm is under test; AlarmB is called from its handler.
type AlarmA struct {
	st   *durable.State
	bs   *durable.Namespace[*AlarmB]
	runs chan durable.AlarmInfo
	fn   func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error
}

func (a *AlarmA) ArmAt(ctx context.Context, atMs int64) (bool, error) {
	if err := a.st.Storage().Put("at", atMs); err != nil {
		return false, err
	}
	return true, a.st.Storage().SetAlarm(time.UnixMilli(atMs))
}
func (a *AlarmA) ArmThenFail(ctx context.Context, atMs int64) (bool, error) {
	if err := a.st.Storage().SetAlarm(time.UnixMilli(atMs)); err != nil {
		return false, err
	}
	return false, errors.New("fails after SetAlarm")
}

func (a *AlarmA) Cancel(ctx context.Context, _ int) (bool, error) {
	return true, a.st.Storage().DeleteAlarm()
}
func (a *AlarmA) Get(ctx context.Context) (int64, error) {
	t, ok, err := a.st.Storage().GetAlarm()
	if !ok || err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}
func (a *AlarmA) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	a.runs <- info
	return a.fn(ctx, a, info)
}

type AlarmB struct {
	st      *durable.State
	as      func() *durable.Namespace[*AlarmA]
	started chan struct{}
	release chan struct{}
}

func (b *AlarmB) CancelA(ctx context.Context, name string) (bool, error) {
	return durable.Call(ctx, b.as().GetByName(name), (*AlarmA).Cancel, 0)
}
func (b *AlarmB) ArmA(ctx context.Context, at int64) (bool, error) {
	return durable.Call(ctx, b.as().GetByName("a"), (*AlarmA).ArmAt, at)
}
func (b *AlarmB) Slow(ctx context.Context, _ int) (bool, error) {
	b.started <- struct{}{}
	<-b.release
	return true, nil
}

type alarmEnv struct {
	rt      *durable.Runtime
	as      *durable.Namespace[*AlarmA]
	bs      *durable.Namespace[*AlarmB]
	runs    chan durable.AlarmInfo
	started chan struct{}
	release chan struct{}
}

func openAlarmEnv(t *testing.T, cfg durable.Config, fn func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error) *alarmEnv {
	rt, err := durable.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &alarmEnv{rt: rt, runs: make(chan durable.AlarmInfo, 64), started: make(chan struct{}, 4), release: make(chan struct{})}
	e.bs = durable.Define(rt, "AlarmB", func(st *durable.State) (*AlarmB, error) {
		return &AlarmB{st: st, as: func() *durable.Namespace[*AlarmA] { return e.as }, started: e.started, release: e.release}, nil
	})
	e.as = durable.Define(rt, "AlarmA", func(st *durable.State) (*AlarmA, error) {
		return &AlarmA{st: st, bs: e.bs, runs: e.runs, fn: fn}, nil
	})
	return e
}

func (e *alarmEnv) close(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rt.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// fireOnce arms object "a" a second ahead on clk, passes that time, and
// waits for its handler to run.
func fireOnce(t *testing.T, e *alarmEnv, clk *durabletest.Clock) {
	t.Helper()
	at := clk.Now().Add(time.Second).UnixMilli()
	if _, err := durable.Call(context.Background(), e.as.GetByName("a"), (*AlarmA).ArmAt, at); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if _, ok := waitAlarmRun(t, e.runs, 10*time.Second); !ok {
		t.Fatal("alarm did not run")
	}
}

func waitAlarmRun(t *testing.T, ch chan durable.AlarmInfo, d time.Duration) (durable.AlarmInfo, bool) {
	select {
	case i := <-ch:
		return i, true
	case <-time.After(d):
		return durable.AlarmInfo{}, false
	}
}

func alarmIndexRows(t *testing.T, dir string) map[string][2]int64 {
	db, err := sqlite3.Open(filepath.Join(dir, "runtime.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, _, err := db.Prepare("SELECT ns, at_ms, seq FROM alarm_index")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := map[string][2]int64{}
	for st.Step() {
		out[st.ColumnText(0)] = [2]int64{st.ColumnInt64(1), st.ColumnInt64(2)}
	}
	return out
}

func alarmOf(t *testing.T, e *alarmEnv) int64 {
	v, err := durable.Call0(context.Background(), e.as.GetByName("a"), (*AlarmA).Get)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A call let in while the handler waits (AlarmB → AlarmA, on the same
// chain) deletes the alarm; the handler then fails: the deletion prevents
// the retries (spec AL-4), and record and index agree: neither has it, and
// nothing runs after a restart. Without the deletion, the retry is in
// both and runs after a restart. (Before the fix, the nested turn's index
// removal and the retry's record left a record with no index entry: the
// retry was lost at restart.)
func TestAlarm_DeletedDuringFailingHandler(t *testing.T) {
	for _, nested := range []bool{false, true} {
		name := "control"
		if nested {
			name = "nested-delete"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			clk := durabletest.NewClock()
			cfg := durable.Config{Dir: dir, Clock: clk, AlarmRetryBase: time.Hour}
			e := openAlarmEnv(t, cfg, func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error {
				if info.RetryCount > 0 {
					return nil
				}
				if nested {
					if _, err := durable.Call(ctx, a.bs.GetByName("b"), (*AlarmB).CancelA, "a"); err != nil {
						return err
					}
				}
				return errors.New("fails")
			})
			fireOnce(t, e, clk)
			// The alarm turn settles: a retry recorded (control) or none.
			var rec int64
			waitFor(t, "the alarm turn to settle", func() bool {
				rec = alarmOf(t, e)
				return (rec != 0) == !nested
			})
			time.Sleep(200 * time.Millisecond) // the index writes that follow
			e.close(t)
			idx := alarmIndexRows(t, dir)
			_, indexed := idx["AlarmA"]
			if indexed != !nested {
				t.Fatalf("record at %d, index %v: want both or neither", rec, idx)
			}
			cfg.Clock = clk
			e2 := openAlarmEnv(t, cfg, func(context.Context, *AlarmA, durable.AlarmInfo) error { return nil })
			defer e2.close(t)
			clk.Advance(2 * time.Hour)
			info, ran := waitAlarmRun(t, e2.runs, 3*time.Second)
			if ran != !nested || (ran && info.RetryCount != 1) {
				t.Errorf("after a restart: ran %v (%+v), want %v and the first retry", ran, info, !nested)
			}
		})
	}
}

// The handler sets a later alarm in the segment that then fails: the
// record rolls back and the retry (at +2 s) runs at its time, not at the
// rolled-back alarm's (before the fix the index entry had moved there).
func TestAlarm_RolledBackSetAlarmDoesNotDelayTheRetry(t *testing.T) {
	dir := t.TempDir()
	clk := durabletest.NewClock()
	var later int64
	e := openAlarmEnv(t, durable.Config{Dir: dir, Clock: clk, AlarmRetryBase: 2 * time.Second}, func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error {
		if info.RetryCount > 0 {
			return nil
		}
		if err := a.st.Storage().SetAlarm(time.UnixMilli(later)); err != nil {
			return err
		}
		return errors.New("fails after setting a later alarm")
	})
	later = clk.Now().Add(time.Hour).UnixMilli()
	fireOnce(t, e, clk)
	time.Sleep(300 * time.Millisecond)
	rec := alarmOf(t, e)
	for i := 0; i < 20; i++ {
		clk.Advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	if info, ok := waitAlarmRun(t, e.runs, time.Second); !ok || info.RetryCount != 1 {
		t.Errorf("the retry due at %+d ms did not run within 20 s of fake time (%+v)", rec-clk.Now().UnixMilli(), info)
	}
	e.close(t)
}

// The handler returns while a call it started is still out: its alarm is
// settled in a turn of its own and does not run again (before the fix, the
// turn found its storage closed and the alarm reran, uncounted, forever).
func TestAlarm_DetachedCallDoesNotRerun(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Int32
	var e *alarmEnv
	e = openAlarmEnv(t, durable.Config{Dir: dir}, func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error {
		if n.Add(1) == 1 {
			go durable.Call(context.WithoutCancel(ctx), a.bs.GetByName("b"), (*AlarmB).Slow, 0)
			<-e.started
		}
		return nil
	})
	at := time.Now().Add(50 * time.Millisecond).UnixMilli()
	if _, err := durable.Call(context.Background(), e.as.GetByName("a"), (*AlarmA).ArmAt, at); err != nil {
		t.Fatal(err)
	}
	first, _ := waitAlarmRun(t, e.runs, 10*time.Second)
	second, again := waitAlarmRun(t, e.runs, 3*time.Second)
	close(e.release)
	if again {
		t.Errorf("a successful alarm ran again: first %+v, second %+v", first, second)
	}
	e.close(t)
}

// A call let in while the handler waits sets the alarm to the very time of
// the one that fired (an idempotent "ensure the deadline"): that is a new
// alarm, and it runs (before the fix it was taken for the fired one and
// deleted).
func TestAlarm_SetDuringHandlerAtTheSameTimeRuns(t *testing.T) {
	dir := t.TempDir()
	var n atomic.Int32
	e := openAlarmEnv(t, durable.Config{Dir: dir}, func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error {
		if n.Add(1) == 1 {
			var at int64
			if _, err := a.st.Storage().Get("at", &at); err != nil {
				return err
			}
			_, err := durable.Call(ctx, a.bs.GetByName("b"), (*AlarmB).ArmA, at)
			return err
		}
		return nil
	})
	at := time.Now().Add(50 * time.Millisecond).UnixMilli()
	if _, err := durable.Call(context.Background(), e.as.GetByName("a"), (*AlarmA).ArmAt, at); err != nil {
		t.Fatal(err)
	}
	waitAlarmRun(t, e.runs, 10*time.Second)
	if _, ok := waitAlarmRun(t, e.runs, 3*time.Second); !ok {
		t.Errorf("the alarm set during the handler (at the fired time, already due) never ran; record now %d", alarmOf(t, e))
	}
	e.close(t)
}

// A failing handler that left an Exec error unread: its retries are
// counted (before the fix the stale error failed the turn that recorded
// the retry, and the handler reran with RetryCount 0 forever).
func TestAlarm_UnreadErrorInFailingHandlerCountsRetries(t *testing.T) {
	e := openAlarmEnv(t, durable.Config{Dir: t.TempDir(), AlarmRetryBase: 10 * time.Millisecond}, func(ctx context.Context, a *AlarmA, info durable.AlarmInfo) error {
		a.st.Storage().Exec("SELECT * FROM no_such_table")
		return errors.New("fails")
	})
	defer e.close(t)
	at := time.Now().Add(20 * time.Millisecond).UnixMilli()
	if _, err := durable.Call(context.Background(), e.as.GetByName("a"), (*AlarmA).ArmAt, at); err != nil {
		t.Fatal(err)
	}
	var counts []int
	for i := 0; i < 4; i++ {
		info, ok := waitAlarmRun(t, e.runs, 5*time.Second)
		if !ok {
			break
		}
		counts = append(counts, info.RetryCount)
	}
	if len(counts) != 4 || counts[0] != 0 || counts[1] != 1 || counts[2] != 2 || counts[3] != 3 {
		t.Errorf("retry counts %v, want [0 1 2 3]", counts)
	}
}

// An ordinary turn sets a later alarm and fails: the record rolls back to
// the current alarm, which runs at its own time, not at the rolled-back
// one (before the fix the index entry had moved to the later time and the
// scheduler skipped the current one).
func TestAlarm_RolledBackLaterSetKeepsTheCurrentAlarm(t *testing.T) {
	clk := durabletest.NewClock()
	e := openAlarmEnv(t, durable.Config{Dir: t.TempDir(), Clock: clk}, func(context.Context, *AlarmA, durable.AlarmInfo) error { return nil })
	defer e.close(t)
	ctx := context.Background()
	a := e.as.GetByName("a")
	at := clk.Now().Add(time.Second).UnixMilli()
	if _, err := durable.Call(ctx, a, (*AlarmA).ArmAt, at); err != nil {
		t.Fatal(err)
	}
	if _, err := durable.Call(ctx, a, (*AlarmA).ArmThenFail, clk.Now().Add(time.Hour).UnixMilli()); err == nil {
		t.Fatal("ArmThenFail succeeded")
	}
	if got := alarmOf(t, e); got != at {
		t.Fatalf("after the failed turn the alarm is at %d, want %d (rolled back)", got, at)
	}
	for i := 0; i < 100; i++ {
		clk.Advance(100 * time.Millisecond)
		if _, ok := waitAlarmRun(t, e.runs, 20*time.Millisecond); ok {
			return
		}
	}
	t.Fatal("the current alarm did not run within 10 s of fake time after its time")
}
