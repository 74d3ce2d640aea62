package gate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestGate_ReleasesInOrderWhenReady(t *testing.T) {
	var g Gate
	p1, p2 := New(), New()
	var got []int
	g.Hold(p1, func(err error) { got = append(got, 1) })
	g.Hold(p2, func(err error) { got = append(got, 2) })
	g.Hold(p2, func(err error) { got = append(got, 3) })
	p2.Resolve(nil) // later promise first: nothing may overtake output 1
	if len(got) != 0 {
		t.Fatalf("released %v before the first output's promise was ready", got)
	}
	if g.Len() != 3 {
		t.Fatalf("Len = %d, want 3", g.Len())
	}
	p1.Resolve(nil)
	if want := []int{1, 2, 3}; !equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	if g.Len() != 0 {
		t.Fatalf("Len = %d after release, want 0", g.Len())
	}
}

func TestGate_ReadyPromiseReleasesAtOnce(t *testing.T) {
	var g Gate
	released := false
	g.Hold(Resolved(nil), func(err error) { released = err == nil })
	if !released {
		t.Fatal("output held on a ready promise was not released at once")
	}
}

func TestGate_FailedPromiseFailsOutput(t *testing.T) {
	var g Gate
	boom := errors.New("sync failed")
	p := New()
	var got error
	g.Hold(p, func(err error) { got = err })
	p.Resolve(boom)
	if !errors.Is(got, boom) {
		t.Fatalf("release error = %v, want %v", got, boom)
	}
}

func TestGate_FailReleasesEverythingHeld(t *testing.T) {
	var g Gate
	reset := errors.New("reset")
	p := New()
	var errs []error
	g.Hold(p, func(err error) { errs = append(errs, err) })
	g.Hold(p, func(err error) { errs = append(errs, err) })
	g.Fail(reset)
	if len(errs) != 2 || !errors.Is(errs[0], reset) || !errors.Is(errs[1], reset) {
		t.Fatalf("after Fail: %v", errs)
	}
	p.Resolve(nil) // must not release again
	if len(errs) != 2 {
		t.Fatalf("an output was released twice: %v", errs)
	}
	// A later output is unaffected by the earlier Fail.
	q := New()
	var later error = errors.New("not released")
	g.Hold(q, func(err error) { later = err })
	q.Resolve(nil)
	if later != nil {
		t.Fatalf("output held after Fail released with %v", later)
	}
}

// TestGate_ConcurrentResolversKeepOrder resolves promises from many
// goroutines at once; the outputs must still come out in order, each once.
func TestGate_ConcurrentResolversKeepOrder(t *testing.T) {
	for round := 0; round < 50; round++ {
		var g Gate
		const n = 200
		ps := make([]*Promise, n)
		var mu sync.Mutex
		var got []int
		for i := range ps {
			ps[i] = New()
			g.Hold(ps[i], func(error) {
				mu.Lock()
				got = append(got, i)
				mu.Unlock()
			})
		}
		var wg sync.WaitGroup
		for i := n - 1; i >= 0; i-- {
			wg.Add(1)
			go func() { defer wg.Done(); ps[i].Resolve(nil) }()
		}
		wg.Wait()
		deadline := time.Now().Add(10 * time.Second)
		for g.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		if len(got) != n {
			t.Fatalf("released %d of %d", len(got), n)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("release order broken at %d: got %d", i, v)
			}
		}
		mu.Unlock()
	}
}

func TestPromise_WaitAndFollow(t *testing.T) {
	p, q := New(), New()
	q.Follow(p)
	go p.Resolve(nil)
	if err := q.Wait(context.Background()); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New().Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on cancelled ctx = %v", err)
	}
	r := New()
	r.Resolve(errors.New("first"))
	r.Resolve(nil)
	if done, err := r.Ready(); !done || err == nil {
		t.Fatalf("second Resolve changed the result: %v %v", done, err)
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Done not closed on a ready promise")
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAll(t *testing.T) {
	a, b := New(), New()
	all := All(a, b)
	a.Resolve(nil)
	if done, _ := all.Ready(); done {
		t.Fatal("All ready before every promise")
	}
	boom := errors.New("boom")
	b.Resolve(boom)
	if done, err := all.Ready(); !done || !errors.Is(err, boom) {
		t.Fatalf("All = %v %v", done, err)
	}
	if done, err := All().Ready(); !done || err != nil {
		t.Fatal("All() of nothing")
	}
	c := New()
	if All(c) != c {
		t.Fatal("All of one promise should be that promise")
	}
}
