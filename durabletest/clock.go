package durabletest

import (
	"sort"
	"sync"
	"time"

	"github.com/durable-go/durable"
)

// Clock is a fake durable.Clock for tests: its time moves only with
// Advance, and its timers fire inside Advance. Pass it as Config.Clock.
type Clock struct {
	mu     sync.Mutex
	cond   sync.Cond
	now    time.Time
	timers map[*fakeTimer]struct{} // guarded by mu; armed timers
}

var _ durable.Clock = (*Clock)(nil)

// NewClock returns a fake clock set to the real current time.
func NewClock() *Clock {
	c := &Clock{now: time.Now(), timers: make(map[*fakeTimer]struct{})}
	c.cond.L = &c.mu
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock reaches now+d (at
// once for d ≤ 0).
func (c *Clock) NewTimer(d time.Duration) durable.Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	t.armLocked(d)
	c.mu.Unlock()
	return t
}

// Advance moves the clock forward by d, firing every timer that comes due,
// in time order (the clock reads each timer's time as it fires). After
// firing one it waits until the runtime took the tick from the timer's
// channel (up to 10 s), so the work it triggers has been handed over when
// Advance returns.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	target := c.now.Add(d)
	for {
		t := c.nextLocked(target)
		if t == nil {
			break
		}
		c.now = t.when
		delete(c.timers, t)
		select {
		case t.ch <- c.now:
		default:
		}
		c.mu.Unlock()
		t.waitTaken()
		c.mu.Lock()
	}
	if target.After(c.now) {
		c.now = target
	}
	c.mu.Unlock()
}

// nextLocked returns the earliest armed timer due at or before target.
func (c *Clock) nextLocked(target time.Time) *fakeTimer {
	var due []*fakeTimer
	for t := range c.timers {
		if !t.when.After(target) {
			due = append(due, t)
		}
	}
	if len(due) == 0 {
		return nil
	}
	sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	return due[0]
}

// BlockUntilTimers waits until at least n timers are armed (neither
// stopped nor fired), so a test does not advance before the runtime armed
// its timer.
func (c *Clock) BlockUntilTimers(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) < n {
		c.cond.Wait()
	}
}

// Timers reports how many timers are armed.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

type fakeTimer struct {
	c    *Clock
	ch   chan time.Time
	when time.Time // guarded by c.mu
}

// armLocked sets the timer to fire after d; it fires now if d ≤ 0.
func (t *fakeTimer) armLocked(d time.Duration) {
	t.when = t.c.now.Add(d)
	if d <= 0 {
		delete(t.c.timers, t)
		select {
		case t.ch <- t.c.now:
		default:
		}
		return
	}
	t.c.timers[t] = struct{}{}
	t.c.cond.Broadcast()
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	delete(t.c.timers, t)
	return armed
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	t.armLocked(d)
	return armed
}

// waitTaken waits until the fired tick was received.
func (t *fakeTimer) waitTaken() {
	deadline := time.Now().Add(10 * time.Second)
	for len(t.ch) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Microsecond)
	}
}
