package durable_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Blocker's alarm handler waits to be released and fails on its first run.
type Blocker struct {
	st      *durable.State
	entered chan int
	release chan struct{}
	runs    *atomic.Int64
}

func (b *Blocker) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	n := b.runs.Add(1)
	b.entered <- int(n)
	if n == 1 {
		<-b.release
		return errors.New("first attempt fails")
	}
	return nil
}

func (b *Blocker) SetAt(ctx context.Context, at time.Time) (bool, error) {
	return true, b.st.Storage().SetAlarm(at)
}

func (b *Blocker) Get(ctx context.Context) (time.Time, error) {
	t, _, err := b.st.Storage().GetAlarm()
	return t, err
}

// A SetAlarm made while an alarm turn settles (a call queued behind it, in
// the same batch) wins over that turn's retry: the index entry of the
// retry only moves the row the fired entry left, so the alarm fires at
// the time set, not at the retry's.
func TestSetAlarmDuringAlarmTurnWinsOverItsRetry(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk, AlarmRetryBase: time.Minute})
	entered := make(chan int, 10)
	release := make(chan struct{})
	runs := &atomic.Int64{}
	ns := durable.Define(rt, "BLOCKER", func(st *durable.State) (*Blocker, error) {
		return &Blocker{st: st, entered: entered, release: release, runs: runs}, nil
	})
	stub := ns.GetByName("b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := durable.Call(ctx, stub, (*Blocker).SetAt, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Millisecond)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the alarm did not fire")
	}
	// A call setting an earlier alarm is queued behind the alarm turn.
	want := clk.Now().Add(500 * time.Millisecond)
	setDone := make(chan error, 1)
	go func() {
		_, err := durable.Call(ctx, stub, (*Blocker).SetAt, want)
		setDone <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the call queue
	close(release)
	if err := <-setDone; err != nil {
		t.Fatal(err)
	}
	at, err := durable.Call0(ctx, stub, (*Blocker).Get)
	if d := at.Sub(want); err != nil || d < 0 || d >= time.Millisecond {
		t.Fatalf("record = %v, %v; want %v", at, err, want)
	}
	time.Sleep(200 * time.Millisecond) // the outcome reaches the scheduler
	// Walk the clock to 5 s past the record's time.
	for i := 0; i < 55; i++ {
		clk.Advance(100 * time.Millisecond)
		select {
		case <-entered:
			t.Logf("fired at %v after the record's time (ok)", clk.Now().Sub(want))
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Show when it does fire.
	for i := 0; i < 120; i++ {
		clk.Advance(time.Second)
		select {
		case <-entered:
			t.Fatalf("the alarm set for %v (record %v) fired only %v late, at the failed attempt's retry time", want, at, clk.Now().Sub(want))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("the alarm never fired")
}

// Nagger sets alarms from every place a turn can: its constructor inside
// BlockConcurrencyWhile and a Transaction, its methods inside a
// Transaction, and its alarm handler (which re-arms a few times).
type Nagger struct {
	st    *durable.State
	fired *atomic.Int64
}

func (n *Nagger) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	var k int64
	n.st.Storage().Get("k", &k)
	n.st.Storage().Put("k", k+1)
	n.fired.Add(1)
	if k < 3 {
		return n.st.Storage().Transaction(func() error {
			return n.st.Storage().SetAlarm(time.Now().Add(time.Millisecond))
		})
	}
	return nil
}

func (n *Nagger) Arm(ctx context.Context, d time.Duration) (bool, error) {
	err := n.st.Storage().Transaction(func() error {
		if err := n.st.Storage().DeleteAlarm(); err != nil {
			return err
		}
		return n.st.Storage().SetAlarm(time.Now().Add(d))
	})
	return err == nil, err
}

// SetAlarm waits for the index; no path may deadlock, Close included.
func TestSetAlarmFromEveryPlaceNeverHangs(t *testing.T) {
	dir := t.TempDir()
	fired := &atomic.Int64{}
	newNagger := func(st *durable.State) (*Nagger, error) {
		n := &Nagger{st: st, fired: fired}
		err := st.BlockConcurrencyWhile(func(ctx context.Context) error {
			return st.Storage().Transaction(func() error {
				return st.Storage().SetAlarm(time.Now().Add(time.Hour))
			})
		})
		return n, err
	}
	for round := 0; round < 3; round++ {
		rt, err := durable.Open(durable.Config{Dir: dir, MaxOpenDatabases: 8})
		if err != nil {
			t.Fatal(err)
		}
		ns := durable.Define(rt, "NAG", newNagger)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		done := make(chan struct{})
		for i := 0; i < 40; i++ {
			go func() {
				defer func() { done <- struct{}{} }()
				stub := ns.GetByName(string(rune('a'+i%26)) + string(rune('a'+i/26)))
				for j := 0; j < 10; j++ {
					if _, err := durable.Call(ctx, stub, (*Nagger).Arm, time.Duration(j%3)*time.Millisecond); err != nil {
						return // the runtime closes under us
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+round*100) * time.Millisecond)
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		closed := make(chan error, 1)
		go func() { closed <- rt.Close(cctx) }()
		select {
		case err := <-closed:
			if err != nil {
				t.Logf("round %d: Close: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close hangs", round)
		}
		for i := 0; i < 40; i++ {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("round %d: a caller hangs", round)
			}
		}
		ccancel()
		cancel()
	}
	t.Logf("handlers run: %d", fired.Load())
}
