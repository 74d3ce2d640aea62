package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("--otlp-endpoint %q: port %s is not from 1 to 65535", endpoint, p)
		}
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
	if math.IsNaN(sample) || sample < 0 || sample > 1 {
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
// continues the trace its traceparent header names, named by the route
// that served it; the calls its handler makes are the span's children.
func traceHTTP(tr *tracing.Tracer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tr.StartHTTP(r.Context(), propagation.HeaderCarrier(r.Header), r.Method)
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		r = r.WithContext(ctx)
		defer func() {
			// The mux records the pattern it matched on r ("GET /metrics",
			// "/counter/{name}"): the route without its method or host.
			route := r.Pattern
			if _, p, ok := strings.Cut(route, " "); ok {
				route = p
			}
			if i := strings.IndexByte(route, '/'); i > 0 {
				route = route[i:]
			}
			if route == "" {
				route = "unmatched"
			}
			span.SetRoute(r.Method, route)
			span.SetHTTPStatus(sw.code)
			span.End(nil)
		}()
		next.ServeHTTP(sw, r)
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

// FlushError lets http.ResponseController report a failed flush (a client
// gone) through the wrapper.
func (s *statusWriter) FlushError() error {
	return http.NewResponseController(s.ResponseWriter).Flush()
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
