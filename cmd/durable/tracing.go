package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/durable-go/durable/internal/tracing"
)

// otlpURL checks --otlp-endpoint: an http or https URL of an OTLP/HTTP
// collector; without a path, the standard /v1/traces.
func otlpURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--otlp-endpoint %q: want an OTLP/HTTP URL such as http://127.0.0.1:4318", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// newTracerProvider exports spans in batches to an OTLP/HTTP collector,
// keeping sample of the traces that start here (traces a caller started
// keep the caller's decision).
func newTracerProvider(endpoint string, sample float64) (*sdktrace.TracerProvider, error) {
	u, err := otlpURL(endpoint)
	if err != nil {
		return nil, err
	}
	if sample < 0 || sample > 1 {
		return nil, fmt.Errorf("--trace-sample %v: want a fraction from 0 to 1", sample)
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(u),
		otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "durable"))
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))),
	), nil
}

// traceHTTP gives each request to the app's front a server span that
// continues the trace its traceparent header names; the calls its handler
// makes are the span's children.
func traceHTTP(tr *tracing.Tracer, mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, route := mux.Handler(r)
		if route == "" {
			route = r.URL.Path
		}
		ctx, span := tr.StartHTTP(r.Context(), propagation.HeaderCarrier(r.Header), r.Method, route)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetHTTPStatus(sw.code)
		span.End(nil)
	})
}

// statusWriter records the response status; it passes Hijack (WebSocket
// upgrades) and Flush through.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("the response writer cannot be hijacked")
	}
	s.code, s.wrote = http.StatusSwitchingProtocols, true
	return h.Hijack()
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
