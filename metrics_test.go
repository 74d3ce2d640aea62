package durable_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// scrape reads the runtime's metrics through its handler and parses the
// exposition format.
func scrape(t *testing.T, rt *durable.Runtime) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	rt.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value returns the value of the family's sample whose labels include
// want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// The metrics move as a scripted workload says they must.
func TestMetrics_MoveWithTheWorkload(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	ctx := context.Background()
	before := scrape(t, rt)
	if v, ok := value(before, "durable_turns_total", map[string]string{"namespace": "COUNTER"}); !ok || v != 0 {
		t.Fatalf("durable_turns_total before any call = %v (present %v), want 0", v, ok)
	}

	const calls = 25
	for i := range calls {
		if _, err := durable.Call(ctx, ns.GetByName("a"), (*Counter).Increment, 1); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if _, err := durable.Call(ctx, ns.GetByName("b"), (*Counter).Increment, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	durable.Call(ctx, ns.GetByName("a"), (*Counter).Fail, "no")
	durable.Call(ctx, ns.GetByName("a"), (*Counter).Panic, "boom")

	ns1 := map[string]string{"namespace": "COUNTER"}
	fams := scrape(t, rt)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"durable_rpc_calls_total", map[string]string{"namespace": "COUNTER", "method": "Increment"}, calls + 3},
		{"durable_rpc_calls_total", map[string]string{"namespace": "COUNTER", "method": "Fail"}, 1},
		{"durable_rpc_calls_total", map[string]string{"namespace": "COUNTER", "method": "Value"}, 0},
		{"durable_turns_total", ns1, calls + 3 + 2},
		{"durable_turn_duration_seconds", ns1, calls + 3 + 2},
		{"durable_turn_errors_total", map[string]string{"namespace": "COUNTER", "kind": "error"}, 1},
		{"durable_turn_errors_total", map[string]string{"namespace": "COUNTER", "kind": "panic"}, 1},
		{"durable_turn_errors_total", map[string]string{"namespace": "COUNTER", "kind": "reset"}, 0},
		// a and b, and a again after the panic reset its instance (the
		// activation stays; the instance is rebuilt in it).
		{"durable_activations_total", ns1, 2},
		{"durable_instances", map[string]string{"namespace": "COUNTER", "state": "live"}, 2},
		{"durable_overloaded_total", ns1, 0},
		{"durable_outputs_held", ns1, 0}, // every reply left: nothing held after the calls returned
		// Each Increment is a KV get and a put, but the first get of a new
		// object finds no database and reads nothing; Fail and Panic each
		// put, and that put rolls back but was still written.
		{"durable_rows_total", map[string]string{"namespace": "COUNTER", "op": "read"}, calls + 3 - 2},
		{"durable_rows_total", map[string]string{"namespace": "COUNTER", "op": "written"}, calls + 3 + 2},
	} {
		got, ok := value(fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// The storage engine: every successful increment committed; batches
	// and sync rounds were observed.
	if v, _ := value(fams, "durable_commit_batches_total", nil); v < 1 {
		t.Errorf("durable_commit_batches_total = %v, want ≥ 1", v)
	}
	if v, _ := value(fams, "durable_sync_duration_seconds", nil); v < 1 {
		t.Errorf("durable_sync_duration_seconds count = %v, want ≥ 1", v)
	}
	if v, ok := value(fams, "durable_open_databases", nil); !ok || v < 1 {
		t.Errorf("durable_open_databases = %v (present %v), want ≥ 1", v, ok)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s is missing: the Go and process collectors are not registered", name)
		}
	}
}

// Flaky is a class with an alarm that fails its first attempt.
type Flaky struct {
	st    *durable.State
	fired chan int
}

func (b *Flaky) Arm(ctx context.Context, in time.Duration) (bool, error) {
	return true, b.st.Storage().SetAlarm(time.Now().Add(in))
}

func (b *Flaky) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	b.fired <- info.RetryCount
	if info.RetryCount == 0 {
		return context.DeadlineExceeded // fails once: one retry
	}
	return nil
}

func TestMetrics_Alarms(t *testing.T) {
	rt := durabletest.New(t, durable.Config{AlarmRetryBase: 10 * time.Millisecond})
	fired := make(chan int, 4)
	ns := durable.Define(rt, "FLAKY", func(st *durable.State) (*Flaky, error) { return &Flaky{st: st, fired: fired}, nil })
	if _, err := durable.Call(context.Background(), ns.GetByName("x"), (*Flaky).Arm, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for want := range 2 {
		select {
		case n := <-fired:
			if n != want {
				t.Fatalf("attempt %d had RetryCount %d", want, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d did not come within 10 s", want)
		}
	}
	l := map[string]string{"namespace": "FLAKY"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := scrape(t, rt)
		set, _ := value(fams, "durable_alarms_scheduled_total", l)
		firedN, _ := value(fams, "durable_alarms_fired_total", l)
		retried, _ := value(fams, "durable_alarms_retried_total", l)
		late, _ := value(fams, "durable_alarm_lateness_seconds", l)
		if set == 1 && firedN == 2 && retried == 1 && late == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alarms: scheduled %v fired %v retried %v lateness samples %v; want 1 2 1 2", set, firedN, retried, late)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WebSocket messages in and out, and open sockets, per namespace.
func TestMetrics_WebSockets(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	cl := f.dial(t, "/m1") // "welcome": one message out
	for i := range 3 {
		if got := ask(t, cl, fmt.Sprintf("echo:%d", i)); got != fmt.Sprint(i) {
			t.Fatalf("echo = %q", got)
		}
	}
	fams := scrape(t, f.rt)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"durable_websocket_messages_total", map[string]string{"namespace": "ROOM", "direction": "in"}, 3},
		{"durable_websocket_messages_total", map[string]string{"namespace": "ROOM", "direction": "out"}, 4},
		{"durable_websockets", map[string]string{"namespace": "ROOM", "state": "open"}, 1},
		{"durable_websockets", map[string]string{"namespace": "ROOM", "state": "hibernated"}, 0},
		{"durable_rpc_calls_total", map[string]string{"namespace": "ROOM", "method": "fetch"}, 1},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
}

// Under concurrent calls, replies wait at the output gate for their sync:
// the gauge shows them while they wait.
func TestMetrics_OutputsHeldUnderLoad(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				durable.Call(ctx, ns.GetByName("hot"), (*Counter).Increment, 1)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := value(scrape(t, rt), "durable_outputs_held", map[string]string{"namespace": "COUNTER"})
		if ok && v > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no reply was ever seen held at the output gate under 32 concurrent callers in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// The databases' size on disk shows per namespace once the background
// walk a scrape starts has run.
func TestMetrics_DatabaseBytes(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	for i := range 5 {
		if _, err := durable.Call(context.Background(), ns.GetByName(fmt.Sprint("o", i)), (*Counter).Increment, 1); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := value(scrape(t, rt), "durable_database_bytes", map[string]string{"namespace": "COUNTER"})
		if ok && v >= 5*4096 { // five databases of at least one page each
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("durable_database_bytes = %v (present %v) 10 s after 5 objects wrote, want ≥ %d", v, ok, 5*4096)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Sleeper has a method that takes its time.
type Sleeper struct{}

func (*Sleeper) Nap(ctx context.Context, d time.Duration) (bool, error) {
	time.Sleep(d)
	return true, nil
}

// A turn longer than Config.SlowTurn is logged, with its namespace and
// object; a quick one is not.
func TestSlowTurnIsLogged(t *testing.T) {
	var buf syncBuffer
	rt := durabletest.New(t, durable.Config{SlowTurn: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	ns := durable.Define(rt, "SLEEPER", func(*durable.State) (*Sleeper, error) { return &Sleeper{}, nil })
	ctx := context.Background()
	durable.Call(ctx, ns.GetByName("quick"), (*Sleeper).Nap, time.Millisecond)
	durable.Call(ctx, ns.GetByName("slow"), (*Sleeper).Nap, 120*time.Millisecond)
	log := buf.String()
	id := ns.IDFromName("slow").String()
	if !strings.Contains(log, "slow turn") || !strings.Contains(log, "namespace=SLEEPER") || !strings.Contains(log, id) {
		t.Fatalf("no slow-turn line for the 120 ms turn in:\n%s", log)
	}
	if strings.Contains(log, ns.IDFromName("quick").String()) {
		t.Errorf("the 1 ms turn was logged as slow:\n%s", log)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Panicky panics; Relay returns what its call to Panicky returned.
type Panicky struct{}

func (*Panicky) Boom(ctx context.Context, _ int) (int, error) { panic("boom") }

type Relayer struct{ pn *durable.Namespace[*Panicky] }

func (r *Relayer) Relay(ctx context.Context, _ int) (int, error) {
	return durable.Call(ctx, r.pn.GetByName("p"), (*Panicky).Boom, 0)
}

// A panic counts against the namespace that panicked; an error returned by
// a method counts as an error, even when it wraps another object's reset.
func TestMetrics_ErrorKindsAcrossCalls(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	pn := durable.Define(rt, "PANICKY", func(*durable.State) (*Panicky, error) { return &Panicky{}, nil })
	rn := durable.Define(rt, "RELAYER", func(*durable.State) (*Relayer, error) { return &Relayer{pn: pn}, nil })
	if _, err := durable.Call(context.Background(), rn.GetByName("r"), (*Relayer).Relay, 0); !errors.Is(err, durable.ErrObjectReset) {
		t.Fatalf("Relay: %v, want the callee's reset", err)
	}
	fams := scrape(t, rt)
	for _, c := range []struct {
		ns, kind string
		want     float64
	}{{"PANICKY", "panic", 1}, {"RELAYER", "panic", 0}, {"RELAYER", "error", 1}} {
		if got, _ := value(fams, "durable_turn_errors_total", map[string]string{"namespace": c.ns, "kind": c.kind}); got != c.want {
			t.Errorf("%s %s errors = %v, want %v", c.ns, c.kind, got, c.want)
		}
	}
}

// A burst of calls refused for a full mailbox is logged once, with how
// many, not once per call.
func TestOverloadBurstLoggedOnce(t *testing.T) {
	var buf syncBuffer
	rt := durabletest.New(t, durable.Config{MailboxSize: 2, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	release := make(chan struct{})
	ns := durable.Define(rt, "SLOW", func(*durable.State) (*Slow, error) { return &Slow{release: release}, nil })
	stub := ns.GetByName("s")
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, err := durable.Call0(context.Background(), stub, (*Slow).Wait); errors.Is(err, durable.ErrOverloaded) {
				refused.Add(1)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	lines := strings.Count(buf.String(), "calls refused")
	if refused.Load() < 10 || lines != 1 {
		t.Fatalf("%d calls refused, %d log lines; want ≥ 10 refused and 1 line:\n%s", refused.Load(), lines, buf.String())
	}
}

// Holder blocks in Hold until told, and keeps failing its alarm.
type Holder struct {
	st      *durable.State
	release chan struct{}
}

func (h *Holder) Hold(ctx context.Context, _ int) (int, error) {
	<-h.release
	return 0, nil
}

func (h *Holder) Wake(ctx context.Context, _ int) (int, error) {
	return 0, h.st.Storage().SetAlarm(time.Now())
}

func (h *Holder) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	return errors.New("always fails")
}

// The series a plain workload leaves at zero move too: evictions,
// overload refusals, dropped alarms, and the batch and sync histograms.
func TestMetrics_EvictionsOverloadDroppedBatches(t *testing.T) {
	rt := durabletest.New(t, durable.Config{MailboxSize: 2, IdleTimeout: 50 * time.Millisecond, AlarmRetryBase: time.Millisecond})
	release := make(chan struct{})
	ns := durable.Define(rt, "HOLD", func(st *durable.State) (*Holder, error) { return &Holder{st: st, release: release}, nil })
	ctx := context.Background()
	l := map[string]string{"namespace": "HOLD"}

	// Overload: one call holds the object, the mailbox fills, the rest
	// are refused.
	stub := ns.GetByName("busy")
	var wg sync.WaitGroup
	var refused atomic.Int64
	for range 10 {
		wg.Go(func() {
			if _, err := durable.Call(ctx, stub, (*Holder).Hold, 0); errors.Is(err, durable.ErrOverloaded) {
				refused.Add(1)
			}
		})
	}
	waitFor(t, "calls to be refused with a full mailbox", func() bool { return refused.Load() > 0 })
	close(release)
	wg.Wait()
	// Dropped: an alarm that always fails is given up after 6 retries.
	if _, err := durable.Call(ctx, ns.GetByName("alarm"), (*Holder).Wake, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failing alarm to be dropped and the instances to idle out", func() bool {
		fams := scrape(t, rt)
		dropped, _ := value(fams, "durable_alarms_dropped_total", l)
		evicted, _ := value(fams, "durable_evictions_total", l)
		return dropped == 1 && evicted >= 2
	})
	fams := scrape(t, rt)
	if v, _ := value(fams, "durable_overloaded_total", l); v < 1 {
		t.Errorf("durable_overloaded_total = %v, want ≥ 1", v)
	}
	if v, _ := value(fams, "durable_alarms_retried_total", l); v != 6 {
		t.Errorf("durable_alarms_retried_total = %v, want 6", v)
	}
	for _, name := range []string{"durable_batch_turns", "durable_sync_batches", "durable_sync_turns"} {
		if v, ok := value(fams, name, nil); !ok || v < 1 {
			t.Errorf("%s count = %v (present %v), want ≥ 1", name, v, ok)
		}
	}
}
