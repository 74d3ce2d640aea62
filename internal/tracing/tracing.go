// Package tracing makes the runtime's OpenTelemetry spans. It is the one
// package that speaks the OpenTelemetry API; the runtime holds a *Tracer
// that is nil when tracing is off, and every method of a nil *Tracer (or a
// zero Span) does nothing: tracing off costs a nil check per turn.
//
// The spans of one call chain:
//
//	durable.call NS/Method        client: the caller, from sending until the reply may leave
//	└─ NS/Method                  server: the object's turn, until its writes are durable
//	   ├─ durable.call NS2/M2     calls the turn makes (their turns are children of them)
//	   └─ durable.output_gate     from the reply until the writes it could reveal are durable
//	      ├─ durable.commit       the batch's COMMIT
//	      └─ durable.sync         the sync round that made it durable
//
// Alarms and WebSocket events have no caller: their turns start traces.
package tracing

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/durable-go/durable/internal/gate"
)

// Scope is the instrumentation scope of the runtime's spans.
const Scope = "github.com/durable-go/durable"

// Attribute keys of the runtime's spans.
const (
	KeyNamespace = attribute.Key("durable.namespace")
	KeyObjectID  = attribute.Key("durable.object_id")
	KeyKind      = attribute.Key("durable.kind") // rpc, fetch, alarm, websocket, operator, background
	KeyTurns     = attribute.Key("durable.batch.turns")
	KeyBatches   = attribute.Key("durable.sync.batches")
)

// Tracer makes the runtime's spans; nil is off.
//
// A turn's span ends when its reply's promise is ready, which happens on
// the store's sync coordinator: the callback there only records the time
// and queues the rest (the output gate's spans, the end) for the Tracer's
// own goroutine, so no exporter ever delays a sync round. A full queue
// drops the span (Dropped counts them) rather than wait.
type Tracer struct {
	t       trace.Tracer
	ends    chan ending
	start   sync.Once
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
	dropped atomic.Int64
}

// endQueue bounds the spans waiting to be ended.
const endQueue = 8192

// ending is a turn's span to end: its reply's times and outcome.
type ending struct {
	s                 trace.Span
	replied, resolved time.Time
	tm                gate.Timing
	hasTiming         bool
	err, perr         error
}

// New returns a Tracer on tp, or nil (off) when tp is nil.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer(Scope), ends: make(chan ending, endQueue),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Close ends the spans queued so far and stops the Tracer's goroutine,
// waiting for that until ctx ends (an exporter may hang); it returns how
// many spans were dropped, for a full queue or left queued. Spans whose
// promises resolve later are dropped.
func (t *Tracer) Close(ctx context.Context) int64 {
	if t == nil {
		return 0
	}
	t.closed.Do(func() {
		t.start.Do(func() { close(t.done) }) // never started: nothing to stop
		close(t.stop)
	})
	select {
	case <-t.done:
	case <-ctx.Done():
		t.dropped.Add(int64(len(t.ends)))
	}
	return t.dropped.Load()
}

func (t *Tracer) run() {
	defer close(t.done)
	for {
		select {
		case e := <-t.ends:
			t.finish(e)
		case <-t.stop:
			for {
				select {
				case e := <-t.ends:
					t.finish(e)
				default:
					return
				}
			}
		}
	}
}

// finish makes a turn's output-gate spans and ends it, at the recorded
// times.
func (t *Tracer) finish(e ending) {
	ctx := trace.ContextWithSpan(context.Background(), e.s)
	from := e.replied
	if e.hasTiming && e.tm.CommitStart != 0 && time.Unix(0, e.tm.CommitStart).Before(from) {
		from = time.Unix(0, e.tm.CommitStart) // committed at a durability point inside the turn
	}
	_, g := t.t.Start(ctx, "durable.output_gate", trace.WithTimestamp(from))
	if e.hasTiming {
		gctx := trace.ContextWithSpan(ctx, g)
		if e.tm.CommitEnd != 0 {
			_, c := t.t.Start(gctx, "durable.commit", trace.WithTimestamp(time.Unix(0, e.tm.CommitStart)),
				trace.WithAttributes(KeyTurns.Int(e.tm.Turns)))
			c.End(trace.WithTimestamp(time.Unix(0, e.tm.CommitEnd)))
		}
		if e.tm.SyncEnd != 0 {
			_, y := t.t.Start(gctx, "durable.sync", trace.WithTimestamp(time.Unix(0, e.tm.SyncStart)),
				trace.WithAttributes(KeyBatches.Int(e.tm.Batches)))
			y.End(trace.WithTimestamp(time.Unix(0, e.tm.SyncEnd)))
		}
	}
	err := e.err
	if e.perr != nil {
		g.SetStatus(codes.Error, e.perr.Error())
		if err == nil {
			err = e.perr
		}
	}
	g.End(trace.WithTimestamp(e.resolved))
	if err != nil {
		e.s.RecordError(err)
		e.s.SetStatus(codes.Error, err.Error())
	}
	e.s.End(trace.WithTimestamp(e.resolved))
}

// Span is one started span; the zero Span does nothing.
type Span struct {
	t *Tracer
	s trace.Span
}

func name(ns, method string) string {
	if method == "" {
		return ns
	}
	return ns + "/" + method
}

func attrs(kind, ns, id, method string) []attribute.KeyValue {
	a := []attribute.KeyValue{
		attribute.String("rpc.system", "durable"),
		attribute.String("rpc.service", ns),
		KeyNamespace.String(ns), KeyObjectID.String(id), KeyKind.String(kind),
	}
	if method != "" {
		a = append(a, attribute.String("rpc.method", method))
	}
	return a
}

// StartCall starts the caller's span of a call to object ns/id; the
// returned context carries it to the object's turn.
func (t *Tracer) StartCall(ctx context.Context, kind, ns, id, method string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, s := t.t.Start(ctx, "durable.call "+name(ns, method), clientKind)
	return ctx, recording(t, s, kind, ns, id, method)
}

// Link points a span at the span that caused it without being its
// parent (WaitUntil work links to the turn that asked for it).
type Link struct{ sc trace.SpanContext }

// LinkFrom is a link to the span in ctx (none if it has none).
func LinkFrom(ctx context.Context) Link {
	return Link{trace.SpanContextFromContext(ctx)}
}

// StartTurn starts the span of one turn of object ns/id, a child of the
// span in parent (the caller's), if any, linked to link's span if valid.
func (t *Tracer) StartTurn(parent context.Context, link Link, kind, ns, id, method string) (context.Context, Span) {
	if t == nil {
		return parent, Span{}
	}
	var ctx context.Context
	var s trace.Span
	if link.sc.IsValid() {
		ctx, s = t.t.Start(parent, name(ns, method), serverKind, trace.WithLinks(trace.Link{SpanContext: link.sc}))
	} else {
		ctx, s = t.t.Start(parent, name(ns, method), serverKind)
	}
	return ctx, recording(t, s, kind, ns, id, method)
}

var (
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
)

// recording gives s its attributes and wraps it, or returns the zero Span
// when s records nothing (its trace was not sampled): the context still
// carries it, so the calls it makes are not sampled either, and neither
// its attributes nor its end cost anything. (Samplers see no attributes.)
func recording(t *Tracer, s trace.Span, kind, ns, id, method string) Span {
	if !s.IsRecording() {
		return Span{}
	}
	s.SetAttributes(attrs(kind, ns, id, method)...)
	return Span{t, s}
}

// Active says whether the span records (tracing is on).
func (s Span) Active() bool { return s.s != nil }

// End ends the span with err as its status.
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// EndDurable ends a turn's span once p (what its reply waits on) is ready:
// the wait shows as durable.output_gate, from replied until then, with the
// batch's commit and sync inside when the store recorded them. err is the
// turn's own error. The span ends when the sync that made p ready ended
// (so before the caller's span, which waits for it), or when p was found
// ready.
func (s Span) EndDurable(replied time.Time, p *gate.Promise, err error) {
	if s.s == nil {
		return
	}
	if p == nil {
		s.End(err)
		return
	}
	t := s.t
	t.start.Do(func() { go t.run() })
	p.OnDone(func(perr error) {
		e := ending{s: s.s, replied: replied, err: err, perr: perr}
		e.tm, e.hasTiming = p.Timing()
		if e.hasTiming && e.tm.SyncEnd != 0 {
			e.resolved = time.Unix(0, e.tm.SyncEnd)
		} else {
			e.resolved = time.Now()
		}
		if e.resolved.Before(replied) {
			e.resolved = replied // ready before the reply: the gate held nothing
		}
		select {
		case t.ends <- e:
		default:
			t.dropped.Add(1)
		}
	})
}

// StartHTTP starts the server span of one HTTP request to the server's
// front, continuing the trace its traceparent header names; SetRoute
// names it once the route is known.
func (t *Tracer) StartHTTP(ctx context.Context, carrier propagation.TextMapCarrier, method string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	ctx, s := t.t.Start(ctx, method, serverKind, trace.WithAttributes(attribute.String("http.request.method", method)))
	return ctx, Span{t, s}
}

// SetRoute names an HTTP span by the route that served it.
func (s Span) SetRoute(method, route string) {
	if s.s == nil {
		return
	}
	s.s.SetName(method + " " + route)
	s.s.SetAttributes(attribute.String("http.route", route))
}

// SetHTTPStatus records a response status on an HTTP span.
func (s Span) SetHTTPStatus(code int) {
	if s.s == nil {
		return
	}
	s.s.SetAttributes(attribute.Int("http.response.status_code", code))
	if code >= 500 {
		s.s.SetStatus(codes.Error, "")
	}
}
