package durabletest

import (
	"testing"
	"time"
)

func TestClock_AdvanceFiresInOrder(t *testing.T) {
	c := NewClock()
	start := c.Now()
	t3 := c.NewTimer(3 * time.Second)
	t1 := c.NewTimer(1 * time.Second)
	t2 := c.NewTimer(2 * time.Second)
	if c.Timers() != 3 {
		t.Fatalf("Timers = %d", c.Timers())
	}
	var fired []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			select {
			case at := <-t1.C():
				fired = append(fired, at.Sub(start))
			case at := <-t2.C():
				fired = append(fired, at.Sub(start))
			case at := <-t3.C():
				fired = append(fired, at.Sub(start))
			}
		}
	}()
	c.Advance(5 * time.Second)
	<-done
	if len(fired) != 3 || fired[0] != time.Second || fired[1] != 2*time.Second || fired[2] != 3*time.Second {
		t.Fatalf("fired at %v", fired)
	}
	if got := c.Now().Sub(start); got != 5*time.Second {
		t.Fatalf("Now advanced by %v", got)
	}
}

func TestClock_StopResetAndZero(t *testing.T) {
	c := NewClock()
	tm := c.NewTimer(time.Second)
	if !tm.Stop() || tm.Stop() {
		t.Fatal("Stop reports")
	}
	c.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported active")
	}
	if !tm.Reset(2 * time.Second) {
		t.Fatal("Reset of an armed timer reported inactive")
	}
	go c.Advance(2 * time.Second)
	<-tm.C()
	z := c.NewTimer(0)
	select {
	case <-z.C():
	default:
		t.Fatal("a zero timer did not fire at once")
	}
}

func TestClock_BlockUntilTimers(t *testing.T) {
	c := NewClock()
	armed := make(chan struct{})
	go func() {
		c.BlockUntilTimers(2)
		close(armed)
	}()
	c.NewTimer(time.Minute)
	select {
	case <-armed:
		t.Fatal("returned with one timer")
	case <-time.After(10 * time.Millisecond):
	}
	c.NewTimer(time.Minute)
	select {
	case <-armed:
	case <-time.After(10 * time.Second):
		t.Fatal("BlockUntilTimers did not return with two timers")
	}
}
