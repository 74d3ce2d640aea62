package durable_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Reminder counts its alarms and can be told to fail them.
type Reminder struct {
	st    *durable.State
	fails *atomic.Int64 // how many more attempts fail
	fired chan durable.AlarmInfo
	reset *atomic.Bool // set a new alarm inside the handler
}

func (r *Reminder) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	var n int64
	r.st.Storage().Get("fired", &n)
	r.st.Storage().Put("fired", n+1)
	_, during, _ := r.st.Storage().GetAlarm()
	r.st.Storage().Put("visible during handler", during)
	if r.reset != nil && r.reset.Load() {
		r.st.Storage().SetAlarm(time.Now().Add(time.Hour))
	}
	if r.fired != nil {
		r.fired <- info
	}
	if r.fails != nil && r.fails.Add(-1) >= 0 {
		r.st.Storage().Put("written by a failed attempt", true)
		return errors.New("handler failure")
	}
	return nil
}

func (r *Reminder) Set(ctx context.Context, at time.Time) (bool, error) {
	return true, r.st.Storage().SetAlarm(at)
}

func (r *Reminder) Get(ctx context.Context) (time.Time, error) {
	t, _, err := r.st.Storage().GetAlarm()
	return t, err
}

func (r *Reminder) Has(ctx context.Context) (bool, error) {
	_, ok, err := r.st.Storage().GetAlarm()
	return ok, err
}

func (r *Reminder) Delete(ctx context.Context) (bool, error) {
	return true, r.st.Storage().DeleteAlarm()
}

func (r *Reminder) DeleteThenFail(ctx context.Context) (bool, error) {
	r.st.Storage().DeleteAlarm()
	return false, errors.New("fails after DeleteAlarm")
}

func (r *Reminder) Fired(ctx context.Context) (int64, error) {
	var n int64
	_, err := r.st.Storage().Get("fired", &n)
	return n, err
}

func (r *Reminder) Flag(ctx context.Context, key string) (bool, error) {
	var v bool
	_, err := r.st.Storage().Get(key, &v)
	return v, err
}

func TestAlarm_FiresAndClears(t *testing.T) {
	rt := durabletest.New(t)
	fired := make(chan durable.AlarmInfo, 10)
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st, fired: fired}, nil })
	stub := ns.GetByName("r")
	ctx := context.Background()
	at := time.Now().Add(50 * time.Millisecond)
	if _, err := durable.Call(ctx, stub, (*Reminder).Set, at); err != nil {
		t.Fatal(err)
	}
	got, _ := durable.Call0(ctx, stub, (*Reminder).Get)
	if got.Before(at.Truncate(time.Millisecond)) || got.Location() != time.UTC {
		t.Fatalf("GetAlarm = %v, want %v rounded up, UTC", got, at)
	}
	select {
	case info := <-fired:
		if info.IsRetry || info.RetryCount != 0 {
			t.Fatalf("first attempt info = %+v", info)
		}
		if time.Now().Before(at) {
			t.Fatal("the alarm fired before its time")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not fire")
	}
	waitFor(t, "the alarm turn to commit", func() bool {
		ok, _ := durable.Call0(ctx, stub, (*Reminder).Has)
		return !ok
	})
	if v, _ := durable.Call(ctx, stub, (*Reminder).Flag, "visible during handler"); v {
		t.Error("GetAlarm reported the alarm while its handler ran")
	}
}

func TestAlarm_WithoutAlarmerIsAnError(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "NOALARM", NewCounter)
	var err error
	durabletest.RunInObject(t, ns.GetByName("x"), func(c *Counter, st *durable.State) {
		err = st.Storage().SetAlarm(time.Now())
	})
	if !errors.Is(err, durable.ErrNotImplemented) {
		t.Fatalf("SetAlarm on a class without Alarmer = %v", err)
	}
}

func TestAlarm_RetriesWithBackoffOnTheClock(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	fails := &atomic.Int64{}
	fails.Store(100) // always fails
	fired := make(chan durable.AlarmInfo, 20)
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) {
		return &Reminder{st: st, fails: fails, fired: fired}, nil
	})
	stub := ns.GetByName("retry")
	ctx := context.Background()
	start := clk.Now()
	if _, err := durable.Call(ctx, stub, (*Reminder).Set, start); err != nil {
		t.Fatal(err)
	}
	// The alarm time is rounded up to the next millisecond.
	clk.Advance(time.Millisecond)
	waitInfo := func(want int) {
		t.Helper()
		for {
			select {
			case info := <-fired:
				if info.RetryCount != want || info.IsRetry != (want > 0) {
					t.Fatalf("attempt info = %+v, want retry %d", info, want)
				}
				return
			case <-time.After(10 * time.Second):
				t.Fatalf("attempt %d did not come", want)
			}
		}
	}
	waitInfo(0)
	for retry := 1; retry <= 6; retry++ {
		backoff := (2 * time.Second) << (retry - 1)
		waitFor(t, "the retry to be scheduled", func() bool {
			at, _ := durable.Call0(ctx, stub, (*Reminder).Get)
			return !at.IsZero()
		})
		at, _ := durable.Call0(ctx, stub, (*Reminder).Get)
		if d := at.Sub(clk.Now()); d < backoff-time.Second || d > backoff+time.Second {
			t.Fatalf("retry %d scheduled in %v, want %v", retry, d, backoff)
		}
		// Move time in 100 ms steps: the retry must not come before its
		// time, and must come once it is reached.
		deadline := time.Now().Add(10 * time.Second)
	step:
		for {
			select {
			case info := <-fired:
				if clk.Now().Before(at) {
					t.Fatalf("retry %d came at %v, before its time %v", retry, clk.Now(), at)
				}
				if info.RetryCount != retry || !info.IsRetry {
					t.Fatalf("attempt info = %+v, want retry %d", info, retry)
				}
				break step
			case <-time.After(2 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("retry %d did not come (clock %v, due %v)", retry, clk.Now(), at)
			}
			clk.Advance(100 * time.Millisecond)
		}
	}
	// After the sixth retry fails the alarm is deleted.
	waitFor(t, "the alarm to be dropped", func() bool {
		ok, _ := durable.Call0(ctx, stub, (*Reminder).Has)
		return !ok
	})
	if v, _ := durable.Call(ctx, stub, (*Reminder).Flag, "written by a failed attempt"); v {
		t.Error("a failed attempt's write survived")
	}
	clk.Advance(time.Hour)
	select {
	case info := <-fired:
		t.Fatalf("an attempt after the last retry: %+v", info)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestAlarm_DeleteInFailedTurnRollsBack(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st}, nil })
	stub := ns.GetByName("d")
	ctx := context.Background()
	durable.Call(ctx, stub, (*Reminder).Set, clk.Now().Add(time.Hour))
	if _, err := durable.Call0(ctx, stub, (*Reminder).DeleteThenFail); err == nil {
		t.Fatal("no error")
	}
	if ok, _ := durable.Call0(ctx, stub, (*Reminder).Has); !ok {
		t.Fatal("an alarm deleted in a failed turn is gone")
	}
	durable.Call0(ctx, stub, (*Reminder).Delete)
	if ok, _ := durable.Call0(ctx, stub, (*Reminder).Has); ok {
		t.Fatal("DeleteAlarm did not delete")
	}
}

func TestAlarm_RunAlarmAndSetInsideHandler(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	reset := &atomic.Bool{}
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st, reset: reset}, nil })
	stub := ns.GetByName("run")
	ctx := context.Background()
	if durabletest.RunAlarm(t, stub) {
		t.Fatal("RunAlarm ran without an alarm")
	}
	durable.Call(ctx, stub, (*Reminder).Set, clk.Now().Add(24*time.Hour))
	reset.Store(true)
	if !durabletest.RunAlarm(t, stub) {
		t.Fatal("RunAlarm did not run a pending alarm")
	}
	if n, _ := durable.Call0(ctx, stub, (*Reminder).Fired); n != 1 {
		t.Fatalf("fired %d times", n)
	}
	// The handler set a new alarm: it is kept.
	if ok, _ := durable.Call0(ctx, stub, (*Reminder).Has); !ok {
		t.Fatal("an alarm set inside the handler was not kept")
	}
	reset.Store(false)
	if !durabletest.RunAlarm(t, stub) {
		t.Fatal("second RunAlarm")
	}
	if ok, _ := durable.Call0(ctx, stub, (*Reminder).Has); ok {
		t.Fatal("RunAlarm left the alarm")
	}
}

func TestAlarm_ManyObjectsAllFire(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st}, nil })
	ctx := context.Background()
	const n = 1000
	at := time.Now().Add(200 * time.Millisecond)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := durable.Call(ctx, ns.GetByName(fmt.Sprint("m", i)), (*Reminder).Set, at); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; i++ {
		stub := ns.GetByName(fmt.Sprint("m", i))
		for {
			f, err := durable.Call0(ctx, stub, (*Reminder).Fired)
			if err != nil {
				t.Fatal(err)
			}
			if f >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("object %d's alarm did not fire", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestAlarm_DueBeforeDefineFiresAfterDefine(t *testing.T) {
	clk := durabletest.NewClock()
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir, Clock: clk})
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st}, nil })
	durable.Call(context.Background(), ns.GetByName("late"), (*Reminder).Set, clk.Now().Add(time.Minute))
	rt2 := durabletest.Restart(t, rt)
	clk.Advance(2 * time.Minute) // due now, but REM is not defined on rt2 yet
	time.Sleep(50 * time.Millisecond)
	fired := make(chan durable.AlarmInfo, 1)
	ns2 := durable.Define(rt2, "REM", func(st *durable.State) (*Reminder, error) { return &Reminder{st: st, fired: fired}, nil })
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not fire after Define")
	}
	waitFor(t, "the alarm to clear", func() bool {
		ok, _ := durable.Call0(context.Background(), ns2.GetByName("late"), (*Reminder).Has)
		return !ok
	})
}

func TestAlarm_SetReplacesAndFailedHandlerKeepsRetrySchedule(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	fails := &atomic.Int64{}
	reset := &atomic.Bool{}
	fired := make(chan durable.AlarmInfo, 10)
	ns := durable.Define(rt, "REM", func(st *durable.State) (*Reminder, error) {
		return &Reminder{st: st, fails: fails, reset: reset, fired: fired}, nil
	})
	stub := ns.GetByName("x")
	ctx := context.Background()
	// One alarm per object: a second SetAlarm replaces the first.
	durable.Call(ctx, stub, (*Reminder).Set, clk.Now().Add(time.Hour))
	durable.Call(ctx, stub, (*Reminder).Set, clk.Now().Add(time.Minute))
	if at, _ := durable.Call0(ctx, stub, (*Reminder).Get); at.Sub(clk.Now()) > time.Minute+time.Second {
		t.Fatalf("the second SetAlarm did not replace the first: %v", at)
	}
	// The handler sets a new alarm an hour ahead, then fails: that alarm
	// rolls back with it and the retry (2 s) stands.
	fails.Store(1)
	reset.Store(true)
	clk.Advance(time.Minute + time.Second)
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not fire")
	}
	waitFor(t, "the retry to be recorded", func() bool {
		at, _ := durable.Call0(ctx, stub, (*Reminder).Get)
		return !at.IsZero() && at.Sub(clk.Now()) < 3*time.Second
	})
	at, _ := durable.Call0(ctx, stub, (*Reminder).Get)
	if d := at.Sub(clk.Now()); d < time.Second || d > 3*time.Second {
		t.Fatalf("after a failed handler that set an alarm an hour ahead, the alarm is in %v; want the 2 s retry", d)
	}
}
