package alarm

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/store"
)

// fakeClock is a minimal manual clock for the scheduler's tests.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c     *fakeClock
	ch    chan time.Time
	when  time.Time
	armed bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.armLocked(d)
	return t
}

func (t *fakeTimer) armLocked(d time.Duration) {
	t.when, t.armed = t.c.now.Add(d), true
	if d <= 0 {
		t.fireLocked()
	}
}

func (t *fakeTimer) fireLocked() {
	t.armed = false
	select {
	case t.ch <- t.c.now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armed = false
	return was
}
func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armLocked(d)
	return was
}

// advance moves time and fires due timers.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		if t.armed && !t.when.After(c.now) {
			t.fireLocked()
		}
	}
}

// fixture is a scheduler on a real store, recording fired entries.
type fixture struct {
	t     *testing.T
	st    *store.Store
	clk   *fakeClock
	s     *Scheduler
	mu    sync.Mutex
	fired []firing
	undef map[string]bool
	close func()
}

type firing struct {
	e   Entry
	now int64
}

func newFixture(t *testing.T, dir string, pageSize int) *fixture {
	t.Helper()
	st, err := store.Open(store.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, clk: newFakeClock(), undef: map[string]bool{}}
	idx, err := st.AcquireNode("runtime")
	if err != nil {
		t.Fatal(err)
	}
	f.s, err = Open(Config{Index: idx, Clock: f.clk, Log: slog.New(slog.DiscardHandler), PageSize: pageSize,
		Lookahead: time.Second, Fire: f.fire})
	if err != nil {
		t.Fatal(err)
	}
	f.close = sync.OnceFunc(func() {
		f.s.Close()
		idx.Release()
		st.Close()
	})
	t.Cleanup(f.close)
	return f
}

func (f *fixture) fire(e Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.undef[e.NS] {
		return ErrUndefined
	}
	f.fired = append(f.fired, firing{e, f.clk.Now().UnixMilli()})
	return nil
}

func (f *fixture) firings() []firing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]firing(nil), f.fired...)
}

// waitFired waits until n entries fired (or 10 s).
func (f *fixture) waitFired(n int) []firing {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := f.firings()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("fired %d of %d", len(got), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// stepUntil advances the clock in steps until n entries fired.
func (f *fixture) stepUntil(n int, step time.Duration) []firing {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := f.firings(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("fired %d of %d", len(f.firings()), n)
		}
		f.clk.advance(step)
		time.Sleep(200 * time.Microsecond)
	}
}

func TestScheduler_FiresInTimeOrderNeverEarly(t *testing.T) {
	f := newFixture(t, t.TempDir(), 100)
	base := f.clk.Now().UnixMilli()
	const n = 1000
	for i := 0; i < n; i++ {
		// Times out of order, some equal.
		at := base + int64((i*7919)%500) + 1
		if err := f.s.Set("NS", fmt.Sprintf("o%04d", i), at).Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if len(f.firings()) != 0 {
		t.Fatal("entries fired before their time")
	}
	for step := 0; step < 520; step += 5 {
		f.clk.advance(5 * time.Millisecond)
		time.Sleep(100 * time.Microsecond)
	}
	got := f.waitFired(n)
	seen := map[string]bool{}
	for i, fr := range got {
		if fr.now < fr.e.AtMs {
			t.Fatalf("%s fired at %d, before %d", fr.e.ID, fr.now, fr.e.AtMs)
		}
		if seen[fr.e.ID] {
			t.Fatalf("%s fired twice", fr.e.ID)
		}
		seen[fr.e.ID] = true
		if i > 0 && fr.e.AtMs < got[i-1].e.AtMs && fr.now == got[i-1].now {
			t.Fatalf("fired out of time order at %d", i)
		}
	}
}

func TestScheduler_PagesThroughALargeIndex(t *testing.T) {
	dir := t.TempDir()
	const n = 5000
	{
		f := newFixture(t, dir, 100)
		base := f.clk.Now().UnixMilli()
		for i := 0; i < n; i++ {
			f.s.Set("NS", fmt.Sprintf("o%05d", i), base+int64(i)+10_000) // 10 s ahead, 1 per ms
		}
		if err := f.s.Set("NS", "last", base+20_000).Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.close()
	}
	// A new scheduler (a restart) finds them all in the index, a page at
	// a time: memory stays bounded.
	f := newFixture(t, dir, 100)
	maxInMemory := 0
	for i := 0; i < 250; i++ {
		f.clk.advance(100 * time.Millisecond)
		time.Sleep(200 * time.Microsecond)
		if m := f.s.Stats().InMemory; m > maxInMemory {
			maxInMemory = m
		}
	}
	got := f.waitFired(n + 1)
	if len(got) != n+1 {
		t.Fatalf("fired %d, want %d", len(got), n+1)
	}
	if maxInMemory > 1500 {
		t.Errorf("up to %d entries in memory for a page size of 100 and a 1 s lookahead", maxInMemory)
	}
	if f.s.Stats().Loads < n/100 {
		t.Errorf("%d loads for %d entries in pages of 100", f.s.Stats().Loads, n)
	}
}

func TestScheduler_NewerSetSupersedes(t *testing.T) {
	f := newFixture(t, t.TempDir(), 100)
	base := f.clk.Now().UnixMilli()
	f.s.Set("NS", "x", base+100)
	f.s.Set("NS", "x", base+50).Wait(t.Context())
	f.clk.advance(200 * time.Millisecond)
	got := f.waitFired(1)
	time.Sleep(20 * time.Millisecond)
	got = f.firings()
	if len(got) != 1 || got[0].e.AtMs != base+50 {
		t.Fatalf("fired %+v, want only the newer entry", got)
	}
	// A conditional delete of the fired (newest) entry empties the index;
	// the superseded one never fires.
	f.s.Done(Outcome{Entry: got[0].e, Kind: Cleared})
	f.clk.advance(time.Second)
	time.Sleep(20 * time.Millisecond)
	if len(f.firings()) != 1 {
		t.Fatalf("fired %d times", len(f.firings()))
	}
}

func TestScheduler_OutcomesAndRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir, 100)
	base := f.clk.Now().UnixMilli()
	f.s.Set("NS", "a", base+10)
	f.s.Set("NS", "b", base+10)
	f.s.Set("NS", "c", base+10).Wait(t.Context())
	f.clk.advance(20 * time.Millisecond)
	got := f.waitFired(3)
	byID := map[string]Entry{}
	for _, fr := range got {
		byID[fr.e.ID] = fr.e
	}
	f.s.Done(Outcome{Entry: byID["a"], Kind: Cleared})
	f.s.Done(Outcome{Entry: byID["b"], Kind: Reschedule, AtMs: base + 5_000})
	f.s.Done(Outcome{Entry: byID["c"], Kind: Retry})
	got = f.stepUntil(4, 100*time.Millisecond) // the retry delay is 1 s
	if got[3].e.ID != "c" {
		t.Fatalf("after a Retry, fired %+v", got[3])
	}
	time.Sleep(20 * time.Millisecond) // let the scheduler write the outcomes
	f.close()
	// After a restart: a is gone, b is at +5 s, c (not yet reported) is
	// still in the index.
	f2 := newFixture(t, dir, 100)
	f2.clk.advance(time.Duration(f.clk.Now().UnixMilli()-f2.clk.Now().UnixMilli()) * time.Millisecond)
	got = f2.stepUntil(2, 500*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	ids := map[string]bool{}
	for _, fr := range f2.firings() {
		ids[fr.e.ID] = true
	}
	if ids["a"] || !ids["b"] || !ids["c"] || len(ids) != 2 {
		t.Fatalf("after restart fired %v, want b and c", ids)
	}
}

func TestScheduler_ParksUndefinedNamespaces(t *testing.T) {
	f := newFixture(t, t.TempDir(), 100)
	f.mu.Lock()
	f.undef["LATER"] = true
	f.mu.Unlock()
	base := f.clk.Now().UnixMilli()
	f.s.Set("LATER", "x", base+1).Wait(t.Context())
	f.clk.advance(10 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if len(f.firings()) != 0 {
		t.Fatal("fired for an undefined namespace")
	}
	f.mu.Lock()
	f.undef["LATER"] = false
	f.mu.Unlock()
	f.s.Defined("LATER")
	f.waitFired(1)
}

// Lookup reads the index's times of a range of IDs between the scheduler's
// writes; after Close it fails at once instead of waiting.
func TestScheduler_Lookup(t *testing.T) {
	f := newFixture(t, t.TempDir(), 100)
	base := f.clk.Now().UnixMilli() + 3_600_000
	for i, id := range []string{"a", "b", "c", "d"} {
		if err := f.s.Set("NS", id, base+int64(i)).Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	f.s.Set("OTHER", "b", base).Wait(t.Context())
	got, err := f.s.Lookup(t.Context(), "NS", "b", "c")
	if err != nil || len(got) != 2 || got["b"] != base+1 || got["c"] != base+2 {
		t.Fatalf("Lookup(NS, b..c) = %v, %v; want b and c", got, err)
	}
	f.s.Close()
	done := make(chan error, 1)
	go func() { _, err := f.s.Lookup(context.Background(), "NS", "a", "z"); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Lookup after Close succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lookup after Close did not return")
	}
}

// Remove drops an entry whose sequence number is at most the bound, and
// leaves one a later Set wrote.
func TestScheduler_Remove(t *testing.T) {
	f := newFixture(t, t.TempDir(), 100)
	base := f.clk.Now().UnixMilli() + 3_600_000
	f.s.Set("NS", "a", base).Wait(t.Context())
	f.s.Set("NS", "b", base).Wait(t.Context())
	bound := f.s.Seq()
	f.s.Set("NS", "b", base+5).Wait(t.Context()) // after the bound: stays
	f.s.Remove("NS", "a", bound)
	f.s.Remove("NS", "b", bound)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got, err := f.s.Lookup(t.Context(), "NS", "a", "z")
		if err != nil {
			t.Fatal(err)
		}
		if _, hasA := got["a"]; !hasA && got["b"] == base+5 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("index %v, want a removed and b at its newer time", got)
		}
	}
}
