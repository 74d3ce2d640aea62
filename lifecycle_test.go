package durable_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Relay calls other relays, to test outgoing calls and re-entry.
type Relay struct {
	st *durable.State
	ns **durable.Namespace[*Relay]
}

func (r *Relay) Echo(ctx context.Context, s string) (string, error) { return s, nil }

// Ping calls target's Pong, which calls back this object's Echo on the
// same call chain (A→B→A).
func (r *Relay) Ping(ctx context.Context, target string) (string, error) {
	r.st.Storage().Put("pinged", true)
	return durable.Call(ctx, (*r.ns).GetByName(target), (*Relay).Pong, r.st.ID().Name())
}

func (r *Relay) Pong(ctx context.Context, back string) (string, error) {
	return durable.Call(ctx, (*r.ns).GetByName(back), (*Relay).Echo, "pong from "+r.st.ID().Name())
}

// WriteCallFail writes, calls out, writes again, then fails: the write
// before the call (a durability point) survives, the one after does not.
func (r *Relay) WriteCallFail(ctx context.Context, target string) (int, error) {
	if err := r.st.Storage().Put("before", 1); err != nil {
		return 0, err
	}
	if _, err := durable.Call(ctx, (*r.ns).GetByName(target), (*Relay).Echo, "x"); err != nil {
		return 0, err
	}
	if err := r.st.Storage().Put("after", 1); err != nil {
		return 0, err
	}
	return 0, errors.New("fails after the call")
}

func (r *Relay) Has(ctx context.Context, key string) (bool, error) {
	return r.st.Storage().Get(key, new(any))
}

func defineRelay(rt *durable.Runtime) *durable.Namespace[*Relay] {
	var ns *durable.Namespace[*Relay]
	ns = durable.Define(rt, "RELAY", func(st *durable.State) (*Relay, error) { return &Relay{st: st, ns: &ns}, nil })
	return ns
}

func TestCall_Reentry(t *testing.T) {
	rt := durabletest.New(t)
	ns := defineRelay(rt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := durable.Call(ctx, ns.GetByName("a"), (*Relay).Ping, "b")
	if err != nil || got != "pong from b" {
		t.Fatalf("A→B→A = %q %v", got, err)
	}
	// Self-call on the same chain: A→A.
	got, err = durable.Call(ctx, ns.GetByName("a"), (*Relay).Pong, "a")
	if err != nil || got != "pong from a" {
		t.Fatalf("A→A = %q %v", got, err)
	}
}

func TestCall_DurabilityPointBeforeOutgoingCall(t *testing.T) {
	rt := durabletest.New(t)
	ns := defineRelay(rt)
	ctx := context.Background()
	stub := ns.GetByName("w")
	if _, err := durable.Call(ctx, stub, (*Relay).WriteCallFail, "other"); err == nil {
		t.Fatal("no error")
	}
	if ok, _ := durable.Call(ctx, stub, (*Relay).Has, "before"); !ok {
		t.Error("the write before the outgoing call was rolled back")
	}
	if ok, _ := durable.Call(ctx, stub, (*Relay).Has, "after"); ok {
		t.Error("the write after the outgoing call survived the error")
	}
}

// Life counts constructions.
type Life struct {
	st    *durable.State
	ready bool
}

var constructions atomic.Int64

func (l *Life) Ready(ctx context.Context) (bool, error) { return l.ready, nil }

func (l *Life) Touch(ctx context.Context) (int64, error) {
	return constructions.Load(), l.st.Storage().Put("t", true)
}

func TestEviction_WithFakeClock(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk, IdleTimeout: time.Minute})
	ns := durable.Define(rt, "LIFE", func(st *durable.State) (*Life, error) {
		constructions.Add(1)
		return &Life{st: st}, nil
	})
	ctx := context.Background()
	before := constructions.Load()
	stub := ns.GetByName("x")
	for i := 0; i < 3; i++ {
		if _, err := durable.Call0(ctx, stub, (*Life).Touch); err != nil {
			t.Fatal(err)
		}
	}
	if n := constructions.Load() - before; n != 1 {
		t.Fatalf("constructed %d times for 3 calls, want 1", n)
	}
	clk.BlockUntilTimers(1) // the idle timer
	clk.Advance(59 * time.Second)
	if durabletest.Live(rt) != 1 {
		t.Fatal("evicted before IdleTimeout")
	}
	clk.Advance(time.Second)
	waitFor(t, "eviction", func() bool { return durabletest.Live(rt) == 0 })
	if _, err := durable.Call0(ctx, stub, (*Life).Touch); err != nil {
		t.Fatal(err)
	}
	if n := constructions.Load() - before; n != 2 {
		t.Fatalf("constructed %d times, want 2 (once more after eviction)", n)
	}
}

func TestBlockConcurrencyWhile_InConstructor(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "BCW", func(st *durable.State) (*Life, error) {
		l := &Life{st: st}
		err := st.BlockConcurrencyWhile(func(ctx context.Context) error {
			time.Sleep(30 * time.Millisecond)
			l.ready = true
			return st.Storage().Put("schema", 1)
		})
		return l, err
	})
	stub := ns.GetByName("b")
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready, err := durable.Call0(context.Background(), stub, (*Life).Ready)
			if err != nil || !ready {
				t.Errorf("a call was served before BlockConcurrencyWhile finished: %v %v", ready, err)
			}
		}()
	}
	wg.Wait()
}

func TestBlockConcurrencyWhile_OverrunResets(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	release := make(chan struct{})
	var lateErr atomic.Pointer[error]
	var calls atomic.Int64
	ns := durable.Define(rt, "BCW", func(st *durable.State) (*Life, error) {
		l := &Life{st: st}
		if calls.Add(1) == 1 {
			err := st.BlockConcurrencyWhile(func(ctx context.Context) error {
				<-release
				err := st.Storage().Put("late", 1) // after the overrun: fenced
				lateErr.Store(&err)
				return nil
			})
			return l, err
		}
		return l, nil
	})
	stub := ns.GetByName("b")
	done := make(chan error, 1)
	go func() {
		_, err := durable.Call0(context.Background(), stub, (*Life).Ready)
		done <- err
	}()
	// Advance until the overrun fires: the first armed timer may be the
	// driver's idle timer of the moment before the call arrived.
	var err error
	deadline := time.Now().Add(10 * time.Second)
wait:
	for {
		if clk.Timers() > 0 {
			clk.Advance(30 * time.Second)
		}
		select {
		case err = <-done:
			break wait
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the call never returned")
		}
	}
	if !errors.Is(err, durable.ErrObjectReset) {
		t.Fatalf("call during an overrun = %v, want ErrObjectReset", err)
	}
	close(release)
	waitFor(t, "the stale function's write", func() bool { return lateErr.Load() != nil })
	if err := *lateErr.Load(); !errors.Is(err, durable.ErrObjectReset) {
		t.Fatalf("storage of a fenced instance = %v, want ErrObjectReset", err)
	}
	// The next call gets a fresh instance.
	if _, err := durable.Call0(context.Background(), stub, (*Life).Touch); err != nil {
		t.Fatal(err)
	}
	var ok bool
	durabletest.RunInObject(t, stub, func(l *Life, st *durable.State) {
		ok, _ = st.Storage().Get("late", new(int))
	})
	if ok {
		t.Fatal("a fenced instance wrote")
	}
}

// Waiter uses WaitUntil.
type Waiter struct{ st *durable.State }

func (w *Waiter) Later(ctx context.Context, v string) (bool, error) {
	w.st.WaitUntil(func(ctx context.Context) {
		w.st.Storage().Put("later", v)
	})
	return true, nil
}

func (w *Waiter) Get(ctx context.Context) (string, error) {
	var v string
	_, err := w.st.Storage().Get("later", &v)
	return v, err
}

func TestWaitUntil(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "WAIT", func(st *durable.State) (*Waiter, error) { return &Waiter{st: st}, nil })
	stub := ns.GetByName("w")
	ctx := context.Background()
	if _, err := durable.Call(ctx, stub, (*Waiter).Later, "done"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the WaitUntil turn", func() bool {
		v, _ := durable.Call0(ctx, stub, (*Waiter).Get)
		return v == "done"
	})
}

// Gate counts how many times Run actually ran.
type Gate struct {
	release chan struct{}
	runs    *atomic.Int64
}

func (g *Gate) Block(ctx context.Context) (int, error) {
	<-g.release
	return 0, nil
}

func (g *Gate) Run(ctx context.Context) (int, error) {
	g.runs.Add(1)
	return 0, nil
}

func TestCall_CancelledWhileQueuedNeverRuns(t *testing.T) {
	rt := durabletest.New(t)
	release := make(chan struct{})
	var runs atomic.Int64
	ns := durable.Define(rt, "GATE", func(*durable.State) (*Gate, error) { return &Gate{release: release, runs: &runs}, nil })
	stub := ns.GetByName("g")
	go durable.Call0(context.Background(), stub, (*Gate).Block)
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := durable.Call0(ctx, stub, (*Gate).Run)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call = %v", err)
	}
	close(release)
	if _, err := durable.Call0(context.Background(), stub, (*Gate).Run); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("Run ran %d times, want 1 (the cancelled call must not run)", n)
	}
}

func TestClose_RefusesQueuedAndFinishesRunning(t *testing.T) {
	rt, err := durable.Open(durable.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var runs atomic.Int64
	ns := durable.Define(rt, "GATE", func(*durable.State) (*Gate, error) { return &Gate{release: release, runs: &runs}, nil })
	stub := ns.GetByName("g")
	running := make(chan error, 1)
	go func() {
		_, err := durable.Call0(context.Background(), stub, (*Gate).Block)
		running <- err
	}()
	time.Sleep(20 * time.Millisecond)
	queued := make(chan error, 1)
	go func() {
		_, err := durable.Call0(context.Background(), stub, (*Gate).Run)
		queued <- err
	}()
	time.Sleep(20 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- rt.Close(context.Background()) }()
	if err := <-queued; !errors.Is(err, durable.ErrClosed) {
		t.Fatalf("queued call at Close = %v, want ErrClosed", err)
	}
	close(release)
	if err := <-running; err != nil {
		t.Fatalf("running call at Close = %v, want success", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, err := durable.Call0(context.Background(), stub, (*Gate).Run); !errors.Is(err, durable.ErrClosed) {
		t.Fatalf("call after Close = %v, want ErrClosed", err)
	}
	if err := rt.Close(context.Background()); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// Named reports its own name.
type Named struct{ st *durable.State }

func (n *Named) Name(ctx context.Context) (string, error) {
	return n.st.ID().Name(), n.st.Storage().Put("seen", true)
}

func TestState_NameKeptInStorage(t *testing.T) {
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir})
	ns := durable.Define(rt, "NAMED", func(st *durable.State) (*Named, error) { return &Named{st: st}, nil })
	ctx := context.Background()
	if got, err := durable.Call0(ctx, ns.GetByName("bob"), (*Named).Name); err != nil || got != "bob" {
		t.Fatalf("name by name = %q %v", got, err)
	}
	id := ns.IDFromName("bob").String()
	rt2 := durabletest.Restart(t, rt)
	ns2 := durable.Define(rt2, "NAMED", func(st *durable.State) (*Named, error) { return &Named{st: st}, nil })
	parsed, _ := ns2.IDFromString(id)
	if got, err := durable.Call0(ctx, ns2.Get(parsed), (*Named).Name); err != nil || got != "bob" {
		t.Fatalf("name when reached by ID after a restart = %q %v", got, err)
	}
	if ids := durabletest.ListIDs(t, ns2); len(ids) != 1 || ids[0].String() != id {
		t.Fatalf("ListIDs = %v", ids)
	}
	// A read-only visit creates nothing.
	durabletest.RunInObject(t, ns2.GetByName("ghost"), func(n *Named, st *durable.State) {
		st.Storage().Get("x", new(int))
	})
	if ids := durabletest.ListIDs(t, ns2); len(ids) != 1 {
		t.Fatalf("ListIDs after a read-only visit = %d objects", len(ids))
	}
}

// Web serves HTTP.
type Web struct {
	st      *durable.State
	release chan struct{}
}

func (w *Web) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.st.Storage().Put("hit", r.URL.Path)
	rw.Header().Set("X-Object", w.st.ID().Name())
	if r.URL.Path == "/stream" {
		io.WriteString(rw, "first;")
		rw.(http.Flusher).Flush()
		<-w.release
		io.WriteString(rw, "second")
		return
	}
	rw.WriteHeader(http.StatusTeapot)
	io.WriteString(rw, "hello "+r.URL.Path)
}

func TestHTTP_FetchAndStreamingServeHTTP(t *testing.T) {
	rt := durabletest.New(t)
	release := make(chan struct{})
	ns := durable.Define(rt, "WEB", func(st *durable.State) (*Web, error) { return &Web{st: st, release: release}, nil })
	stub := ns.GetByName("site")
	req := httptest.NewRequest("GET", "/path", nil)
	resp, err := stub.Fetch(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTeapot || string(body) != "hello /path" || resp.Header.Get("X-Object") != "site" {
		t.Fatalf("Fetch = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	res, err := http.Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first;" {
		t.Fatalf("first streamed part = %q %v (it must arrive before the turn ends)", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(res.Body)
	if string(rest) != "second" {
		t.Fatalf("rest = %q", rest)
	}
	// A class without ServeHTTP.
	plain := durable.Define(rt, "PLAIN", NewCounter)
	if _, err := plain.GetByName("p").Fetch(httptest.NewRequest("GET", "/", nil)); !errors.Is(err, durable.ErrNotImplemented) {
		t.Fatalf("Fetch on a class without ServeHTTP = %v", err)
	}
	rec := httptest.NewRecorder()
	plain.GetByName("p").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusNotImplemented {
		t.Fatalf("ServeHTTP on a class without ServeHTTP = %d", rec.Code)
	}
}

// TestOpen_LockedAcrossProcesses: a second process cannot open a Dir this
// one holds.
func TestOpen_LockedAcrossProcesses(t *testing.T) {
	if dir := os.Getenv("DURABLE_LOCK_CHILD"); dir != "" {
		_, err := durable.Open(durable.Config{Dir: dir})
		if errors.Is(err, durable.ErrLocked) {
			os.Exit(3)
		}
		os.Exit(4)
	}
	dir := t.TempDir()
	durabletest.New(t, durable.Config{Dir: dir})
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpen_LockedAcrossProcesses$")
	cmd.Env = append(os.Environ(), "DURABLE_LOCK_CHILD="+dir)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child Open on a held Dir: %v (exit 3 means ErrLocked)", err)
	}
}

func TestRunInObject(t *testing.T) {
	rt := durabletest.New(t)
	ns := durable.Define(rt, "COUNTER", NewCounter)
	stub := ns.GetByName("r")
	durabletest.RunInObject(t, stub, func(c *Counter, st *durable.State) {
		if err := st.Storage().Put("n", int64(41)); err != nil {
			t.Fatal(err)
		}
	})
	if v, err := durable.Call(context.Background(), stub, (*Counter).Increment, int64(1)); err != nil || v != 42 {
		t.Fatalf("after RunInObject: %d %v", v, err)
	}
	if !strings.Contains(stub.ID().String(), "") {
		t.Fatal()
	}
}

// Schema is a class whose constructor creates its table.
type Schema struct{ st *durable.State }

func (s *Schema) Fail(ctx context.Context, v int64) (int64, error) {
	if err := s.st.Storage().Exec("INSERT INTO t VALUES (?)", v).Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("this turn fails")
}

func (s *Schema) Add(ctx context.Context, v int64) (int64, error) {
	if err := s.st.Storage().Exec("INSERT INTO t VALUES (?)", v).Err(); err != nil {
		return 0, err
	}
	var n int64
	return n, s.st.Storage().Exec("SELECT count(*) FROM t").Scan(&n)
}

// What the constructor wrote commits on its own: a first turn that fails
// rolls back its own writes, not the table the live instance relies on.
func TestConstructorWritesSurviveAFailedFirstTurn(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "SCHEMA", func(st *durable.State) (*Schema, error) {
		return &Schema{st: st}, st.Storage().Exec("CREATE TABLE IF NOT EXISTS t (v INTEGER)").Err()
	})
	stub := ns.GetByName("s")
	ctx := context.Background()
	if _, err := durable.Call(ctx, stub, (*Schema).Fail, 1); err == nil {
		t.Fatal("Fail did not fail")
	}
	n, err := durable.Call(ctx, stub, (*Schema).Add, 2)
	if err != nil || n != 1 {
		t.Fatalf("Add after a failed first turn = %d, %v; want 1 row (the failed turn's row rolled back, the table kept)", n, err)
	}
}
