package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver: it keeps every span sent to
// it with its service name.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	svc   map[string]bool
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "no", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.svc[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (c *collector) find(name string) *tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// durable serve --otlp-endpoint sends its spans to a real OTLP/HTTP
// receiver: a request's trace continues the caller's traceparent through
// the front, the call and the object's turn; a WebSocket message is a turn
// span of its own; the last spans are flushed at shutdown.
func TestServe_Tracing(t *testing.T) {
	col := &collector{svc: map[string]bool{}}
	rcv := httptest.NewServer(col)
	defer rcv.Close()
	s := startServer(t, t.TempDir(), "--otlp-endpoint", rcv.URL)

	traceID, parentID := "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", s.base+"/counter/traced/increment", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("increment: %d", resp.StatusCode)
	}
	a, b := s.ws("/chat/traced"), s.ws("/chat/traced")
	if err := a.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	if got := readMsg(t, b); got != "hello" {
		t.Fatalf("chat: %q", got)
	}
	a.Close(1000, "done")
	b.Close(1000, "done")
	s.stop() // flushes the batch exporter

	front, call, turn := col.find("POST /counter/{name}/increment"), col.find("durable.call COUNTER/Increment"), col.find("COUNTER/Increment")
	if front == nil || call == nil || turn == nil {
		t.Fatalf("spans: front %v, call %v, turn %v; the receiver got %d spans", front != nil, call != nil, turn != nil, len(col.spans))
	}
	for _, sp := range []*tracepb.Span{front, call, turn} {
		if hex.EncodeToString(sp.TraceId) != traceID {
			t.Errorf("%s is in trace %x, want the caller's %s", sp.Name, sp.TraceId, traceID)
		}
	}
	if hex.EncodeToString(front.ParentSpanId) != parentID || !bytes.Equal(call.ParentSpanId, front.SpanId) || !bytes.Equal(turn.ParentSpanId, call.SpanId) {
		t.Error("the spans do not chain caller → front → call → turn")
	}
	if spanAttr(turn, "durable.namespace") != "COUNTER" || len(spanAttr(turn, "durable.object_id")) != 64 {
		t.Errorf("turn attributes %v", turn.Attributes)
	}
	if ws := col.find("CHAT/WebSocketMessage"); ws == nil || spanAttr(ws, "durable.kind") != "websocket" {
		t.Errorf("no WebSocket message span with kind websocket (%v)", ws)
	}
	if !col.svc["durable"] {
		t.Errorf("service names %v, want durable", col.svc)
	}
}
