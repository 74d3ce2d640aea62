package actor

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestMailbox_LimitAndOrder(t *testing.T) {
	b := NewMailbox[int](2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Push(1, false))
	must(b.Push(2, true)) // system: not counted
	must(b.Push(3, false))
	if err := b.Push(4, false); !errors.Is(err, ErrFull) {
		t.Fatalf("third call: %v, want ErrFull", err)
	}
	must(b.Push(5, true)) // system events are never refused
	var got []int
	for {
		m, ok := b.Pop()
		if !ok {
			break
		}
		got = append(got, m)
		if m == 1 {
			must(b.Push(6, false)) // room again after a pop
		}
	}
	if want := []int{1, 2, 3, 5, 6}; len(got) != len(want) || got[0] != 1 || got[4] != 6 || got[3] != 5 {
		t.Fatalf("order %v, want %v", got, want)
	}
	select {
	case <-b.Signal():
	default:
		t.Fatal("no signal after pushes")
	}
}

func TestMailbox_Close(t *testing.T) {
	b := NewMailbox[string](10)
	b.Push("a", false)
	if b.CloseIfEmpty() {
		t.Fatal("CloseIfEmpty closed a mailbox with an event")
	}
	b.Pop()
	if !b.CloseIfEmpty() {
		t.Fatal("CloseIfEmpty did not close an empty mailbox")
	}
	if err := b.Push("b", true); !errors.Is(err, ErrClosed) {
		t.Fatalf("push after close: %v", err)
	}
	c := NewMailbox[string](10)
	c.Push("x", false)
	c.Push("y", true)
	if left := c.Close(); len(left) != 2 || left[0] != "x" {
		t.Fatalf("Close returned %v", left)
	}
	if c.Len() != 0 {
		t.Fatal("events left after Close")
	}
}

func TestMailbox_Remove(t *testing.T) {
	b := NewMailbox[int](2)
	b.Push(1, false)
	b.Push(2, false)
	if err := b.Push(3, false); !errors.Is(err, ErrFull) {
		t.Fatal("not full")
	}
	if !b.Remove(func(m int) bool { return m == 1 }) {
		t.Fatal("Remove found nothing")
	}
	if b.Remove(func(m int) bool { return m == 1 }) {
		t.Fatal("removed twice")
	}
	if b.Len() != 1 {
		t.Fatalf("Len = %d", b.Len())
	}
	if err := b.Push(3, false); err != nil {
		t.Fatalf("a removed call still counts against the limit: %v", err)
	}
	if m, _ := b.Pop(); m != 2 {
		t.Fatalf("Pop = %d, want 2 (1 was removed)", m)
	}
	if m, _ := b.Pop(); m != 3 {
		t.Fatalf("Pop = %d", m)
	}
	if _, ok := b.Pop(); ok || !b.CloseIfEmpty() {
		t.Fatal("not empty")
	}
}

func TestMailbox_ManyPushPop(t *testing.T) {
	b := NewMailbox[int](1 << 20)
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				b.Push(i, i%3 == 0)
			}
		}()
	}
	n := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		if _, ok := b.Pop(); ok {
			n++
			continue
		}
		select {
		case <-done:
			for {
				if _, ok := b.Pop(); !ok {
					break
				}
				n++
			}
			if n != 4000 {
				t.Fatalf("popped %d of 4000", n)
			}
			return
		case <-b.Signal():
		}
	}
}

func TestToken_ReentryOnlyOnTheSuspendedChain(t *testing.T) {
	var tk Token
	tk.Begin(7)
	if _, ok := tk.Enter(7); ok {
		t.Fatal("entered while the turn runs")
	}
	tk.Suspend()
	if _, ok := tk.Enter(8); ok {
		t.Fatal("a call on another chain entered")
	}
	tk.Block(true)
	tk.Block(true)
	tk.Block(false) // nested BlockConcurrencyWhile: still blocked
	if _, ok := tk.Enter(7); ok {
		t.Fatal("entered while blocking concurrency")
	}
	tk.Block(false)
	level, ok := tk.Enter(7)
	if !ok || level != 1 {
		t.Fatalf("the chain's call could not enter the suspended turn: %d %v", level, ok)
	}
	if _, ok := tk.Enter(7); ok {
		t.Fatal("two nested turns at once")
	}
	resumed := make(chan struct{})
	go func() { tk.Resume(0); close(resumed) }()
	// The nested turn suspends too: the outer one must still wait, since a
	// turn above it is in progress.
	tk.Suspend()
	select {
	case <-resumed:
		t.Fatal("resumed while a nested turn is in progress")
	case <-time.After(20 * time.Millisecond):
	}
	// A deeper call on the chain may enter the suspended nested turn.
	if l2, ok := tk.Enter(7); !ok || l2 != 2 {
		t.Fatalf("a deeper re-entry: %d %v", l2, ok)
	}
	tk.Exit()
	tk.Resume(1) // the nested turn resumes...
	tk.Exit()    // ...and ends
	select {
	case <-resumed:
	case <-time.After(10 * time.Second):
		t.Fatal("Resume did not return after the nested turns ended")
	}
	if !tk.Busy() {
		t.Fatal("not busy during the turn")
	}
	tk.Finish()
	if _, ok := tk.Enter(7); tk.Busy() || ok {
		t.Fatal("the finished turn's chain can still enter")
	}
}
