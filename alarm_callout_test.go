package durable_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Dispatcher's alarm calls another object, with writes around the call;
// what it does after the call is set per test.
type Dispatcher struct {
	st     *durable.State
	adders *durable.Namespace[*Adder]
	before func(st *durable.State, info durable.AlarmInfo) error // before the call out
	after  func(st *durable.State, info durable.AlarmInfo) error // after it
	infos  chan durable.AlarmInfo
}

func (d *Dispatcher) Arm(ctx context.Context, in time.Duration) (bool, error) {
	return true, d.st.Storage().SetAlarm(time.Now().Add(in))
}

func (d *Dispatcher) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	d.infos <- info
	if _, ok, err := d.st.Storage().GetAlarm(); err != nil || ok {
		return errors.New("GetAlarm reported the running alarm")
	}
	if err := d.st.Storage().Put("before", info.RetryCount); err != nil {
		return err
	}
	if d.before != nil {
		if err := d.before(d.st, info); err != nil {
			return err
		}
	}
	if _, err := durable.Call(ctx, d.adders.GetByName("target"), (*Adder).Add, 1); err != nil {
		return err
	}
	if err := d.st.Storage().Put("after", info.RetryCount); err != nil {
		return err
	}
	if d.after != nil {
		return d.after(d.st, info)
	}
	return nil
}

func (d *Dispatcher) Read(ctx context.Context, key string) (int, error) {
	v := -1
	_, err := d.st.Storage().Get(key, &v)
	return v, err
}

func (d *Dispatcher) Alarm0(ctx context.Context) (bool, error) {
	_, ok, err := d.st.Storage().GetAlarm()
	return ok, err
}

func dispatchers(t *testing.T, before, after func(*durable.State, durable.AlarmInfo) error) (*durable.Namespace[*Dispatcher], *durable.Namespace[*Adder], chan durable.AlarmInfo) {
	rt := durabletest.New(t, durable.Config{AlarmRetryBase: 20 * time.Millisecond})
	adders := durable.Define(rt, "ADDER", func(st *durable.State) (*Adder, error) { return &Adder{st: st}, nil })
	infos := make(chan durable.AlarmInfo, 16)
	ds := durable.Define(rt, "DISPATCH", func(st *durable.State) (*Dispatcher, error) {
		return &Dispatcher{st: st, adders: adders, before: before, after: after, infos: infos}, nil
	})
	return ds, adders, infos
}

// arm sets the alarm of dispatcher "d" 5 ms ahead and returns its stub.
func arm(t *testing.T, ds *durable.Namespace[*Dispatcher]) *durable.Stub[*Dispatcher] {
	t.Helper()
	d := ds.GetByName("d")
	if _, err := durable.Call(context.Background(), d, (*Dispatcher).Arm, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return d
}

func nextInfo(t *testing.T, infos chan durable.AlarmInfo) durable.AlarmInfo {
	t.Helper()
	select {
	case info := <-infos:
		return info
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not run within 10 s")
	}
	return durable.AlarmInfo{}
}

// An alarm handler calls other objects (found in review: every call failed
// inside the handler's transaction); the alarm is cleared once it succeeds.
func TestAlarm_HandlerCallsOut(t *testing.T) {
	ds, adders, infos := dispatchers(t, nil, nil)
	ctx := context.Background()
	d := arm(t, ds)
	if info := nextInfo(t, infos); info.IsRetry {
		t.Fatalf("first run is a retry: %+v", info)
	}
	waitFor(t, "the alarm turn to commit", func() bool {
		ok, _ := durable.Call0(ctx, d, (*Dispatcher).Alarm0)
		return !ok
	})
	if n, _ := durable.Call(ctx, adders.GetByName("target"), (*Adder).Add, 0); n != 1 {
		t.Errorf("the target was called %d times, want 1", n)
	}
	if v, _ := durable.Call(ctx, d, (*Dispatcher).Read, "after"); v != 0 {
		t.Errorf("the handler's write after the call = %d, want 0 (kept)", v)
	}
	select {
	case info := <-infos:
		t.Errorf("the alarm ran again: %+v", info)
	case <-time.After(100 * time.Millisecond):
	}
}

// A handler that fails after calling out: its writes before the call were
// committed at the call's durability point and stay; those after roll
// back; the alarm is retried.
func TestAlarm_HandlerFailsAfterCallingOut(t *testing.T) {
	ds, _, infos := dispatchers(t, nil, func(st *durable.State, info durable.AlarmInfo) error {
		if info.RetryCount == 0 {
			return errors.New("fails once")
		}
		return nil
	})
	ctx := context.Background()
	d := arm(t, ds)
	nextInfo(t, infos)
	if info := nextInfo(t, infos); !info.IsRetry || info.RetryCount != 1 {
		t.Fatalf("second run %+v, want the first retry", info)
	}
	waitFor(t, "the retry to commit", func() bool {
		ok, _ := durable.Call0(ctx, d, (*Dispatcher).Alarm0)
		return !ok
	})
	if v, _ := durable.Call(ctx, d, (*Dispatcher).Read, "before"); v != 1 {
		t.Errorf("before = %d, want 1 (the retry's)", v)
	}
	if v, _ := durable.Call(ctx, d, (*Dispatcher).Read, "after"); v != 1 {
		t.Errorf("after = %d, want 1: the failed run's write after its call rolled back, the retry's stayed", v)
	}
}

// A failing handler that set a new alarm before calling out: that alarm
// was committed at the call's durability point and replaces the retries
// (spec AL-8): it runs as a first attempt, at its own time.
func TestAlarm_NewAlarmBeforeCallReplacesRetries(t *testing.T) {
	var runs atomic.Int32
	var newAt atomic.Int64
	ds, _, infos := dispatchers(t, func(st *durable.State, info durable.AlarmInfo) error {
		if runs.Add(1) == 1 {
			at := time.Now().Add(200 * time.Millisecond)
			newAt.Store(at.UnixMilli())
			return st.Storage().SetAlarm(at)
		}
		return nil
	}, func(st *durable.State, info durable.AlarmInfo) error {
		if runs.Load() == 1 {
			return errors.New("fails after setting a new alarm")
		}
		return nil
	})
	arm(t, ds)
	nextInfo(t, infos)
	info := nextInfo(t, infos)
	if info.IsRetry || info.RetryCount != 0 {
		t.Errorf("the run after the failure is %+v, want the new alarm's first attempt", info)
	}
	if now := time.Now().UnixMilli(); now < newAt.Load() {
		t.Errorf("the new alarm ran %d ms before its time", newAt.Load()-now)
	}
}

// While a handler waits after calling out, what its turn committed at the
// call's durability point is on disk with the alarm's record still in it:
// a crash then would run the alarm again (at least once). The database and
// its WAL are copied as they are on disk and opened as a restart after a
// crash would (the runtime's connection holds its lock exclusively).
func TestAlarm_RecordStaysOnDiskUntilTheHandlerEnds(t *testing.T) {
	dir := t.TempDir()
	reached, release := make(chan struct{}), make(chan struct{})
	rt := durabletest.New(t, durable.Config{Dir: dir})
	adders := durable.Define(rt, "ADDER", func(st *durable.State) (*Adder, error) { return &Adder{st: st}, nil })
	infos := make(chan durable.AlarmInfo, 4)
	ds := durable.Define(rt, "DISPATCH", func(st *durable.State) (*Dispatcher, error) {
		return &Dispatcher{st: st, adders: adders, infos: infos, after: func(*durable.State, durable.AlarmInfo) error {
			close(reached)
			<-release
			return nil
		}}, nil
	})
	d := ds.GetByName("d")
	if _, err := durable.Call(context.Background(), d, (*Dispatcher).Arm, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not call out within 10 s")
	}
	id := ds.IDFromName("d").String()
	src := filepath.Join(dir, "objects", "DISPATCH", id[:2], id+".sqlite")
	cp := filepath.Join(t.TempDir(), "crashed.sqlite")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(src + suffix)
		if err == nil {
			err = os.WriteFile(cp+suffix, b, 0o600)
		}
		if err != nil && !(suffix == "-wal" && os.IsNotExist(err)) {
			close(release)
			t.Fatal(err)
		}
	}
	db, err := sqlite3.Open(cp)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	var alarms, before int
	stmt, _, err := db.Prepare("SELECT (SELECT count(*) FROM _durable_alarm), (SELECT count(*) FROM _durable_kv WHERE key = 'before')")
	if err == nil && stmt.Step() {
		alarms, before = stmt.ColumnInt(0), stmt.ColumnInt(1)
	}
	if err == nil {
		err = stmt.Err()
		stmt.Close()
	}
	db.Close()
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if alarms != 1 || before != 1 {
		t.Errorf("on disk during the handler's call: %d alarm records, %d 'before' writes; want 1 and 1", alarms, before)
	}
	waitFor(t, "the alarm turn to commit", func() bool {
		ok, _ := durable.Call0(context.Background(), d, (*Dispatcher).Alarm0)
		return !ok
	})
}
