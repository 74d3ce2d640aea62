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
	if tk.Enter(7) {
		t.Fatal("entered while the turn runs")
	}
	tk.Suspend()
	if tk.Enter(8) {
		t.Fatal("a call on another chain entered")
	}
	tk.Block(true)
	if tk.Enter(7) {
		t.Fatal("entered while blocking concurrency")
	}
	tk.Block(false)
	if !tk.Enter(7) {
		t.Fatal("the chain's call could not enter the suspended turn")
	}
	if tk.Enter(7) {
		t.Fatal("two nested turns at once")
	}
	resumed := make(chan struct{})
	go func() { tk.Resume(); close(resumed) }()
	select {
	case <-resumed:
		t.Fatal("resumed while a nested turn runs")
	case <-time.After(20 * time.Millisecond):
	}
	tk.Exit()
	select {
	case <-resumed:
	case <-time.After(10 * time.Second):
		t.Fatal("Resume did not return after Exit")
	}
	if !tk.Busy() {
		t.Fatal("not busy during the turn")
	}
	tk.Finish()
	if tk.Busy() || tk.Enter(7) {
		t.Fatal("the finished turn's chain can still enter")
	}
}
