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
type Tracer struct {
	t trace.Tracer
}

// New returns a Tracer on tp, or nil (off) when tp is nil.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer(Scope)}
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

// StartTurn starts the span of one turn of object ns/id, a child of the
// span in parent (the caller's), if any.
func (t *Tracer) StartTurn(parent context.Context, kind, ns, id, method string) (context.Context, Span) {
	if t == nil {
		return parent, Span{}
	}
	ctx, s := t.t.Start(parent, name(ns, method), serverKind)
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
// turn's own error.
func (s Span) EndDurable(replied time.Time, p *gate.Promise, err error) {
	if s.s == nil {
		return
	}
	if p == nil {
		s.End(err)
		return
	}
	p.OnDone(func(perr error) {
		ctx := trace.ContextWithSpan(context.Background(), s.s)
		_, g := s.t.t.Start(ctx, "durable.output_gate", trace.WithTimestamp(replied))
		if tm, ok := p.Timing(); ok {
			gctx := trace.ContextWithSpan(ctx, g)
			_, c := s.t.t.Start(gctx, "durable.commit", trace.WithTimestamp(time.Unix(0, tm.CommitStart)),
				trace.WithAttributes(KeyTurns.Int(tm.Turns)))
			c.End(trace.WithTimestamp(time.Unix(0, tm.CommitEnd)))
			if tm.SyncEnd != 0 {
				_, y := s.t.t.Start(gctx, "durable.sync", trace.WithTimestamp(time.Unix(0, tm.SyncStart)),
					trace.WithAttributes(KeyBatches.Int(tm.Batches)))
				y.End(trace.WithTimestamp(time.Unix(0, tm.SyncEnd)))
			}
		}
		if perr != nil {
			g.SetStatus(codes.Error, perr.Error())
			if err == nil {
				err = perr
			}
		}
		g.End()
		Span{s.t, s.s}.End(err)
	})
}

// Inject writes the span context of ctx into carrier (W3C traceparent),
// for a call that leaves the node.
func Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	propagation.TraceContext{}.Inject(ctx, carrier)
}

// Extract returns ctx with the remote span context carrier holds, if any.
func Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// StartHTTP starts the server span of one HTTP request to the server's
// front, continuing the trace its traceparent header names.
func (t *Tracer) StartHTTP(ctx context.Context, carrier propagation.TextMapCarrier, method, route string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx = Extract(ctx, carrier)
	ctx, s := t.t.Start(ctx, method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route)))
	return ctx, Span{t, s}
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
