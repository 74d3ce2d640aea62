package durable_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Tracer calls an Adder, answers HTTP, fails on demand and sets alarms.
type Tracer struct {
	st     *durable.State
	adders *durable.Namespace[*Adder]
}

func (r *Tracer) Relay(ctx context.Context, n int64) (int64, error) {
	if err := r.st.Storage().Put("relayed", n); err != nil {
		return 0, err
	}
	return durable.Call(ctx, r.adders.GetByName("b"), (*Adder).Add, n)
}

func (r *Tracer) Fail(ctx context.Context, _ int64) (int64, error) {
	return 0, errors.New("no such thing")
}

func (r *Tracer) Wake(ctx context.Context, _ int64) (bool, error) {
	return true, r.st.Storage().SetAlarm(time.Now().Add(10 * time.Millisecond))
}

func (r *Tracer) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	return r.st.Storage().Put("woke", true)
}

func (r *Tracer) ServeHTTP(w http.ResponseWriter, req *http.Request) { w.Write([]byte("ok")) }

// Adder keeps a sum.
type Adder struct{ st *durable.State }

func (a *Adder) Add(ctx context.Context, n int64) (int64, error) {
	var sum int64
	if _, err := a.st.Storage().Get("sum", &sum); err != nil {
		return 0, err
	}
	sum += n
	return sum, a.st.Storage().Put("sum", sum)
}

// spans waits until the exporter holds a span named name and returns all.
func spansWith(t *testing.T, exp *tracetest.InMemoryExporter, names ...string) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := exp.GetSpans()
		missing := ""
		for _, n := range names {
			if find(got, n) == nil {
				missing = n
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			var have []string
			for _, s := range got {
				have = append(have, s.Name)
			}
			t.Fatalf("no span %q within 10 s; have %v", missing, have)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func find(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func childOf(t *testing.T, child, parent *tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("%s is not a child of %s", child.Name, parent.Name)
	}
}

func attr(s *tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// tracedRuntime is a runtime whose spans go to exp as they end, with the
// ADDER and RELAY namespaces.
func tracedRuntime(t *testing.T) (*tracetest.InMemoryExporter, *sdktrace.TracerProvider, *durable.Namespace[*Adder], *durable.Namespace[*Tracer]) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	rt := durabletest.New(t, durable.Config{TracerProvider: tp})
	adders := durable.Define(rt, "ADDER", func(st *durable.State) (*Adder, error) { return &Adder{st: st}, nil })
	relays := durable.Define(rt, "RELAY", func(st *durable.State) (*Tracer, error) { return &Tracer{st: st, adders: adders}, nil })
	return exp, tp, adders, relays
}

// A call chain is one trace: the caller's span, the object's turn, the
// call it makes and that turn, each the child of the one before, with the
// namespace and object ID; the turn that wrote shows its reply's wait for
// durability with the batch's commit and the sync after it.
func TestTracing_CallChain(t *testing.T) {
	exp, tp, adders, relays := tracedRuntime(t)

	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	if n, err := durable.Call(ctx, relays.GetByName("a"), (*Tracer).Relay, 5); err != nil || n != 5 {
		t.Fatalf("Relay = %d, %v", n, err)
	}
	root.End()
	got := spansWith(t, exp, "root", "durable.call RELAY/Relay", "RELAY/Relay", "durable.call ADDER/Add", "ADDER/Add", "durable.sync")
	r, callA, turnA := find(got, "root"), find(got, "durable.call RELAY/Relay"), find(got, "RELAY/Relay")
	callB, turnB := find(got, "durable.call ADDER/Add"), find(got, "ADDER/Add")
	childOf(t, callA, r)
	childOf(t, turnA, callA)
	childOf(t, callB, turnA)
	childOf(t, turnB, callB)
	if callA.SpanKind != trace.SpanKindClient || turnA.SpanKind != trace.SpanKindServer {
		t.Errorf("kinds: call %v, turn %v", callA.SpanKind, turnA.SpanKind)
	}
	if attr(turnB, "durable.namespace") != "ADDER" || attr(turnB, "durable.object_id") != adders.IDFromName("b").String() ||
		attr(turnB, "durable.kind") != "rpc" || attr(turnB, "rpc.method") != "Add" {
		t.Errorf("ADDER/Add attributes %v", turnB.Attributes)
	}
	// B wrote: its reply waited for its batch's commit and sync.
	gate, commit, sync := gateOf(got, turnB)
	if gate == nil || commit == nil || sync == nil {
		t.Fatalf("ADDER/Add: output gate %v, commit %v, sync %v; want all three", gate != nil, commit != nil, sync != nil)
	}
	// The invariant, as the trace shows it: the sync that made the batch
	// durable started after its COMMIT returned, and the reply left after.
	if sync.StartTime.Before(commit.EndTime) || gate.EndTime.Before(sync.EndTime) || turnB.EndTime.Before(gate.EndTime) {
		t.Errorf("commit %v–%v, sync %v–%v, gate ends %v, turn ends %v: out of order",
			commit.StartTime, commit.EndTime, sync.StartTime, sync.EndTime, gate.EndTime, turnB.EndTime)
	}
	if callA.EndTime.Before(turnA.StartTime) {
		t.Error("the call ended before its turn started")
	}
	// A wrote before calling B: its writes were committed at that call's
	// durability point, and its reply waited for them.
	if g, c, y := gateOf(got, turnA); g == nil || c == nil || y == nil {
		t.Errorf("RELAY/Relay: output gate %v, commit %v, sync %v; want all three", g != nil, c != nil, y != nil)
	}
	for _, pair := range [][2]*tracetest.SpanStub{{turnA, callA}, {turnB, callB}, {callB, turnA}} {
		if pair[1].EndTime.Before(pair[0].EndTime) {
			t.Errorf("%s ends after its parent %s", pair[0].Name, pair[1].Name)
		}
	}
}

// gateOf returns a turn's output-gate span and the gate's commit and sync.
func gateOf(spans tracetest.SpanStubs, turn *tracetest.SpanStub) (gate, commit, sync *tracetest.SpanStub) {
	for i := range spans {
		if spans[i].Name == "durable.output_gate" && spans[i].Parent.SpanID() == turn.SpanContext.SpanID() {
			gate = &spans[i]
		}
	}
	if gate == nil {
		return nil, nil, nil
	}
	for i := range spans {
		if spans[i].Parent.SpanID() != gate.SpanContext.SpanID() {
			continue
		}
		switch spans[i].Name {
		case "durable.commit":
			commit = &spans[i]
		case "durable.sync":
			sync = &spans[i]
		}
	}
	return gate, commit, sync
}

// Fetch, alarm and failing turns have their own spans: fetch and rpc
// kinds, alarm turns start their own traces, errors set the status.
func TestTracing_KindsAndErrors(t *testing.T) {
	exp, _, _, relays := tracedRuntime(t)
	ctx := context.Background()

	srv := httptest.NewServer(relays.GetByName("h"))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := durable.Call(ctx, relays.GetByName("f"), (*Tracer).Fail, 0); err == nil {
		t.Fatal("Fail succeeded")
	}
	if _, err := durable.Call(ctx, relays.GetByName("w"), (*Tracer).Wake, 0); err != nil {
		t.Fatal(err)
	}
	got := spansWith(t, exp, "RELAY/ServeHTTP", "RELAY/Fail", "RELAY/alarm")
	if s := find(got, "RELAY/ServeHTTP"); attr(s, "durable.kind") != "fetch" || attr(s, "durable.object_id") != relays.IDFromName("h").String() {
		t.Errorf("fetch span attributes %v", s.Attributes)
	}
	if s := find(got, "RELAY/Fail"); s.Status.Code.String() != "Error" || !strings.Contains(s.Status.Description, "no such thing") {
		t.Errorf("a failing turn's status: %v %q", s.Status.Code, s.Status.Description)
	}
	if s := find(got, "RELAY/alarm"); attr(s, "durable.kind") != "alarm" || s.Parent.IsValid() {
		t.Errorf("alarm span: kind %q, parent %v (want a root span)", attr(s, "durable.kind"), s.Parent.SpanID())
	}
}

// discard is an exporter that drops spans: the benchmark measures making
// and batching them, not a collector.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracing: CallSQL on one hot object (64 callers) and over 1,000
// objects, with tracing off, on with every trace kept, and on with 1 in
// 100 kept (spans batched to an exporter that drops them), in one run.
func BenchmarkTracing(b *testing.B) {
	for _, mode := range []struct {
		name   string
		sample float64 // < 0: off
	}{{"off", -1}, {"all", 1}, {"1pct", 0.01}} {
		cfg := func() durable.Config {
			if mode.sample < 0 {
				return durable.Config{}
			}
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(mode.sample))))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			return durable.Config{TracerProvider: tp}
		}
		b.Run(mode.name+"/hot/callers=64", func(b *testing.B) { benchCallsWith(b, 1, 64, cfg()) })
		b.Run(mode.name+"/objects=1000/callers=4", func(b *testing.B) { benchCallsWith(b, 1000, 4, cfg()) })
	}
}

// Many callers of one object: every turn's span ends no later than its
// caller's (the turn ends when its writes were durable, the caller after).
func TestTracing_TurnEndsBeforeItsCaller(t *testing.T) {
	exp, _, adders, _ := tracedRuntime(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if _, err := durable.Call(context.Background(), adders.GetByName("hot"), (*Adder).Add, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var got tracetest.SpanStubs
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got = exp.GetSpans()
		turns := 0
		for _, s := range got {
			if s.Name == "ADDER/Add" {
				turns++
			}
		}
		if turns == 160 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d turn spans of 160 within 10 s", turns)
		}
	}
	byID := map[trace.SpanID]*tracetest.SpanStub{}
	for i := range got {
		byID[got[i].SpanContext.SpanID()] = &got[i]
	}
	late := 0
	for i := range got {
		s := &got[i]
		if s.Name != "ADDER/Add" {
			continue
		}
		if p := byID[s.Parent.SpanID()]; p == nil || p.EndTime.Before(s.EndTime) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d of 160 turn spans end after their caller's span (or lack it)", late)
	}
}

// blockingExporter holds every export until released.
type blockingExporter struct{ release chan struct{} }

func (e blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	<-e.release
	return nil
}
func (blockingExporter) Shutdown(context.Context) error { return nil }

// sampleNamed keeps the traces whose root span's name contains a string.
type sampleNamed string

func (n sampleNamed) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	if (psc.IsValid() && psc.IsSampled()) || (!psc.IsValid() && strings.Contains(p.Name, string(n))) {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: psc.TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: psc.TraceState()}
}

func (n sampleNamed) Description() string { return "sampleNamed" }

// An exporter that blocks (a synchronous one, a collector that hangs) holds
// up only the goroutines that end the spans it exports, never durability:
// turn spans end on the tracer's own goroutine, not on the sync
// coordinator, so calls to objects whose traces are not kept go on.
func TestTracing_BlockedExporterDoesNotStallSyncs(t *testing.T) {
	exp := blockingExporter{release: make(chan struct{})}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampleNamed("SLOW")))
	var once sync.Once
	release := func() { once.Do(func() { close(exp.release) }) }
	rt := durabletest.New(t, durable.Config{TracerProvider: tp})
	t.Cleanup(release) // runs before the runtime's Close (cleanups run last first)
	slow := durable.Define(rt, "SLOW", func(st *durable.State) (*Adder, error) { return &Adder{st: st}, nil })
	fast := durable.Define(rt, "FAST", func(st *durable.State) (*Adder, error) { return &Adder{st: st}, nil })
	ctx := context.Background()
	// Kept traces: their spans block in the exporter, on the caller's
	// goroutine (the client span) and on the tracer's (the turn's).
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		for range 3 {
			durable.Call(ctx, slow.GetByName("s"), (*Adder).Add, 1)
		}
	}()
	done := make(chan error, 1)
	go func() {
		for i := range 50 {
			if _, err := durable.Call(ctx, fast.GetByName(fmt.Sprint("o", i%5)), (*Adder).Add, 1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("calls to other objects stalled behind an exporter that blocks")
	}
	release()
	<-slowDone
}
