package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Counter keeps a number in KV storage.
type Counter struct {
	st *durable.State
}

func NewCounter(st *durable.State) (*Counter, error) { return &Counter{st: st}, nil }

func (c *Counter) Increment(ctx context.Context, by int64) (int64, error) {
	var n int64
	if _, err := c.st.Storage().Get("n", &n); err != nil {
		return 0, err
	}
	n += by
	return n, c.st.Storage().Put("n", n)
}

func (c *Counter) Value(ctx context.Context) (int64, error) {
	var n int64
	_, err := c.st.Storage().Get("n", &n)
	return n, err
}

func (c *Counter) Fail(ctx context.Context, msg string) (int64, error) {
	c.st.Storage().Put("n", int64(-1000))
	return 0, errors.New(msg)
}

func (c *Counter) Panic(ctx context.Context, msg string) (int64, error) {
	c.st.Storage().Put("n", int64(-1000))
	panic(msg)
}

func (c *Counter) Abort(ctx context.Context, reason string) (int64, error) {
	c.st.Storage().Put("n", int64(-1000))
	c.st.Abort(reason)
	return 0, nil
}

func (c *Counter) LimitErr(ctx context.Context) (int64, error) {
	return 0, c.st.Storage().Put(strings.Repeat("k", 3000), 1)
}

func (c *Counter) unexported(ctx context.Context) (int64, error) { return 0, nil }

var errMine = errors.New("my own sentinel")

func (c *Counter) Mine(ctx context.Context) (int64, error) {
	return 0, fmt.Errorf("wrapped: %w", errMine)
}

func TestCall_ConcurrentIncrementsOneObject(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "COUNTER", NewCounter)
	stub := ns.GetByName("hot")
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := durable.Call(ctx, stub, (*Counter).Increment, int64(1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 10000 {
		t.Fatalf("value = %d %v, want 10000", v, err)
	}
}

func TestCall_ConcurrentIncrementsManyObjects(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "COUNTER", NewCounter)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				stub := ns.GetByName(fmt.Sprintf("c%d", (g+i)%100))
				if _, err := durable.Call(ctx, stub, (*Counter).Increment, int64(1)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var total int64
	for o := 0; o < 100; o++ {
		v, err := durable.Call0(ctx, ns.GetByName(fmt.Sprintf("c%d", o)), (*Counter).Value)
		if err != nil {
			t.Fatal(err)
		}
		if v != 100 {
			t.Errorf("object %d = %d, want 100", o, v)
		}
		total += v
	}
	if total != 10000 {
		t.Fatalf("total = %d, want 10000", total)
	}
}

// Log appends the order calls arrive in.
type Log struct{ st *durable.State }

func NewLog(st *durable.State) (*Log, error) { return &Log{st: st}, nil }

func (l *Log) Append(ctx context.Context, v int) (int, error) {
	var got []int
	l.st.Storage().Get("log", &got)
	got = append(got, v)
	return len(got), l.st.Storage().Put("log", got)
}

func (l *Log) Read(ctx context.Context) ([]int, error) {
	var got []int
	_, err := l.st.Storage().Get("log", &got)
	return got, err
}

func TestCall_OneStubRunsInEnqueueOrder(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "LOG", NewLog)
	stub := ns.GetByName("l")
	ctx := context.Background()
	// Enqueue 200 calls one after another from one goroutine without
	// waiting for each: start each in its own goroutine only after the
	// previous one is queued is not observable, so send them from one
	// goroutine in sequence with a pipeline of waiting goroutines.
	const n = 200
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		ready := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			close(ready)
			if _, err := durable.Call(ctx, stub, (*Log).Append, i); err != nil {
				t.Error(err)
			}
		}()
		<-ready
		time.Sleep(50 * time.Microsecond) // let the call reach the mailbox
	}
	wg.Wait()
	got, err := durable.Call0(ctx, stub, (*Log).Read)
	if err != nil || len(got) != n {
		t.Fatalf("log = %d entries, %v", len(got), err)
	}
	inversions := 0
	for i := 1; i < n; i++ {
		if got[i] < got[i-1] {
			inversions++
		}
	}
	t.Logf("%d of %d consecutive pairs out of order (calls issued concurrently may race to the mailbox)", inversions, n)
	// Sequential calls from one goroutine must be in order, always.
	seq := ns.GetByName("seq")
	for i := 0; i < 100; i++ {
		if _, err := durable.Call(ctx, seq, (*Log).Append, i); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = durable.Call0(ctx, seq, (*Log).Read)
	for i, v := range got {
		if v != i {
			t.Fatalf("sequential calls out of order at %d: %v", i, got)
		}
	}
}

func TestCall_Errors(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "COUNTER", NewCounter)
	stub := ns.GetByName("e")
	ctx := context.Background()
	if _, err := durable.Call(ctx, stub, (*Counter).Increment, int64(5)); err != nil {
		t.Fatal(err)
	}
	// A method's error: Remote, its message, its writes rolled back.
	_, err := durable.Call(ctx, stub, (*Counter).Fail, "nope")
	var de *durable.Error
	if !errors.As(err, &de) || !de.Remote || de.Retryable || de.Message != "nope" {
		t.Fatalf("method error = %#v", err)
	}
	// A panic: Remote, Retryable, ErrObjectReset, the panic value in the
	// message; writes rolled back; the stub keeps working.
	_, err = durable.Call(ctx, stub, (*Counter).Panic, "boom")
	if !errors.As(err, &de) || !de.Remote || !de.Retryable || !errors.Is(err, durable.ErrObjectReset) || !strings.Contains(de.Message, "boom") {
		t.Fatalf("panic error = %#v", err)
	}
	// Abort: Retryable, ErrObjectReset, the reason in the message.
	_, err = durable.Call(ctx, stub, (*Counter).Abort, "enough")
	if !errors.As(err, &de) || !de.Retryable || !errors.Is(err, durable.ErrObjectReset) || !strings.Contains(de.Message, "enough") {
		t.Fatalf("abort error = %#v", err)
	}
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 5 {
		t.Fatalf("value after failed turns = %d %v, want 5", v, err)
	}
	// A durable sentinel crosses the call; a user's own arrives as text.
	if _, err := durable.Call0(ctx, stub, (*Counter).LimitErr); !errors.Is(err, durable.ErrLimit) {
		t.Errorf("limit error = %v, want ErrLimit", err)
	}
	if _, err := durable.Call0(ctx, stub, (*Counter).Mine); errors.Is(err, errMine) || err == nil || !strings.Contains(err.Error(), "my own sentinel") {
		t.Errorf("user sentinel = %v: want its message only", err)
	}
	// Not a method of the class.
	notMethod := func(c *Counter, ctx context.Context) (int64, error) { return 0, nil }
	if _, err := durable.Call0(ctx, stub, notMethod); !errors.Is(err, durable.ErrNotImplemented) {
		t.Errorf("closure as a method = %v", err)
	}
	if _, err := durable.Call0(ctx, stub, (*Counter).unexported); !errors.Is(err, durable.ErrNotImplemented) {
		t.Errorf("unexported method = %v", err)
	}
}

func TestIDs(t *testing.T) {
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	other := durable.Define(rt, "OTHER", NewCounter)
	a := ns.IDFromName("alice")
	if a.Name() != "alice" || len(a.String()) != 64 || !a.Equal(ns.IDFromName("alice")) {
		t.Fatalf("IDFromName: %v %q", a, a.Name())
	}
	if a.Equal(other.IDFromName("alice")) {
		t.Fatal("one name gave the same ID in two namespaces")
	}
	u1, u2 := ns.NewUniqueID(), ns.NewUniqueID()
	if u1.Equal(u2) || u1.Name() != "" {
		t.Fatal("unique IDs")
	}
	parsed, err := ns.IDFromString(strings.ToUpper(a.String()))
	if err != nil || !parsed.Equal(a) || parsed.Name() != "" {
		t.Fatalf("IDFromString = %v %v", parsed, err)
	}
	for s, want := range map[string]string{
		"xyz":                        "must be 64 hex digits",
		strings.Repeat("z", 64):      "must be 64 hex digits",
		other.NewUniqueID().String(): "not valid for this namespace",
	} {
		_, err := ns.IDFromString(s)
		if !errors.Is(err, durable.ErrInvalidID) || !strings.Contains(err.Error(), want) {
			t.Errorf("IDFromString(%q) = %v, want %q", s, err, want)
		}
	}
	// A stub for another namespace's ID fails with ErrInvalidID.
	_, err = durable.Call0(context.Background(), ns.Get(other.NewUniqueID()), (*Counter).Value)
	var de *durable.Error
	if !errors.Is(err, durable.ErrInvalidID) || !errors.As(err, &de) || de.Retryable {
		t.Errorf("call with a foreign ID = %v", err)
	}
	// Stable across a restart.
	rt2 := durabletest.Restart(t, rt)
	ns2 := durable.Define(rt2, "COUNTER", NewCounter)
	if !ns2.IDFromName("alice").Equal(a) {
		t.Fatal("named ID changed across a restart")
	}
	if _, err := ns2.IDFromString(u1.String()); err != nil {
		t.Fatalf("unique ID not valid after restart: %v", err)
	}
}

// GetByName's stub cache never hands out a stub of another name: with
// 20,000 names many share a slot, and each stub is still its name's.
func TestGetByName_CacheKeepsNamesApart(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	for round := range 2 {
		for i := range 20000 {
			name := fmt.Sprintf("n%d", i)
			s := ns.GetByName(name)
			if id := s.ID(); !id.Equal(ns.IDFromName(name)) || id.Name() != name {
				t.Fatalf("round %d: GetByName(%q) has ID %v (name %q); want %v", round, name, id, id.Name(), ns.IDFromName(name))
			}
		}
	}
	if a, b := ns.GetByName("hot"), ns.GetByName("hot"); a != b {
		t.Error("a name asked for twice in a row got two stubs: the cache does not hold")
	}
	v, err := durable.Call(context.Background(), ns.GetByName("hot"), (*Counter).Increment, 2)
	if err != nil || v != 2 {
		t.Fatalf("call through a cached stub = %d, %v", v, err)
	}
}

func TestOpen_LockedDir(t *testing.T) {
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir})
	_ = rt
	if _, err := durable.Open(durable.Config{Dir: dir}); !errors.Is(err, durable.ErrLocked) {
		t.Fatalf("second Open on one Dir = %v, want ErrLocked", err)
	}
}

func TestOpen_SecretMismatch(t *testing.T) {
	dir := t.TempDir()
	rt, err := durable.Open(durable.Config{Dir: dir, Secret: []byte("first secret")})
	if err != nil {
		t.Fatal(err)
	}
	rt.Close(context.Background())
	if _, err := durable.Open(durable.Config{Dir: dir, Secret: []byte("another")}); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("Open with another secret = %v", err)
	}
	rt, err = durable.Open(durable.Config{Dir: dir}) // no secret: the kept one
	if err != nil {
		t.Fatal(err)
	}
	rt.Close(context.Background())
}

func TestDefine_Panics(t *testing.T) {
	rt := durabletest.New(t)
	expectPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		fn()
	}
	expectPanic("non-pointer class", func() {
		durable.Define(rt, "V", func(*durable.State) (Counter, error) { return Counter{}, nil })
	})
	expectPanic("bad name", func() { durable.Define(rt, "bad name!", NewCounter) })
	expectPanic("empty name", func() { durable.Define(rt, "", NewCounter) })
	durable.Define(rt, "ONCE", NewCounter)
	expectPanic("duplicate", func() { durable.Define(rt, "ONCE", NewCounter) })
}

// Overload: a slow object with a small mailbox refuses the excess at once.
type Slow struct{ release chan struct{} }

func (s *Slow) Wait(ctx context.Context) (int, error) {
	<-s.release
	return 0, nil
}

func TestCall_Overload(t *testing.T) {
	rt := durabletest.New(t, durable.Config{MailboxSize: 3})
	release := make(chan struct{})
	ns := durable.Define(rt, "SLOW", func(*durable.State) (*Slow, error) { return &Slow{release: release}, nil })
	stub := ns.GetByName("s")
	ctx := context.Background()
	var overloaded atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := durable.Call0(ctx, stub, (*Slow).Wait)
			var de *durable.Error
			if errors.As(err, &de) && de.Overloaded {
				if !errors.Is(err, durable.ErrOverloaded) || de.Retryable {
					t.Errorf("overload error = %#v", de)
				}
				overloaded.Add(1)
			} else if err != nil {
				t.Error(err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for overloaded.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	// Three wait in the mailbox and one may already run: six or seven of
	// ten are refused, depending on whether the first left the mailbox
	// before the others arrived.
	if got := overloaded.Load(); got != 6 && got != 7 {
		t.Fatalf("overloaded = %d, want 6 or 7", got)
	}
}
