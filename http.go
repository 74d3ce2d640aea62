package durable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/ws"
)

// Fetch sends an HTTP request into the object (its class must implement
// http.Handler) and returns the response once the turn has ended and the
// writes the response could reveal are durable. A class without ServeHTTP
// gives an error wrapping ErrNotImplemented. Fetch cannot carry a WebSocket
// upgrade: use ServeHTTP.
func (s *Stub[T]) Fetch(req *http.Request) (*http.Response, error) {
	if s.err != nil {
		return nil, s.err
	}
	if !s.ns.handler {
		return nil, &Error{Message: fmt.Sprintf("durable: %s does not implement http.Handler (ServeHTTP)", s.ns.typeName()), Err: ErrNotImplemented}
	}
	if isUpgrade(req) {
		return nil, &Error{Message: "durable: Fetch cannot carry a WebSocket upgrade; proxy the request with Stub.ServeHTTP", Err: ErrNotImplemented}
	}
	res, err := s.serve(req.Context(), req, nil)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", res.status, http.StatusText(res.status)),
		StatusCode:    res.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        res.header,
		Body:          io.NopCloser(bytes.NewReader(res.body)),
		ContentLength: int64(len(res.body)),
		Request:       req,
	}, nil
}

// ServeHTTP proxies a request into the object: a *Stub is an http.Handler,
// so front code can route a request to an object. What the object writes
// passes the output gate: a flush of a streaming response first makes the
// turn's writes so far durable, then sends what was written; the rest is
// sent when the turn's writes are durable. A class without ServeHTTP
// answers 501.
func (s *Stub[T]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.err != nil {
		http.Error(w, s.err.Error(), http.StatusBadRequest)
		return
	}
	if !s.ns.handler {
		http.Error(w, fmt.Sprintf("%s does not implement http.Handler", s.ns.typeName()), http.StatusNotImplemented)
		return
	}
	if c := s.ns.rpcCounter("fetch"); c != nil {
		c.IncAt(metrics.StripeOf(s.oid.ID))
	}
	res, err := s.serve(r.Context(), r, w)
	if err == nil && res.upgrade != nil {
		// The turn's writes are durable: answer the handshake; what the
		// handler wrote to w is ignored.
		if err := res.upgrade.Upgrade(w, r, res.header); err != nil {
			s.ns.rt.cfg.Logger.Debug("durable: WebSocket handshake failed", "namespace", s.ns.name, "id", s.id.String(), "err", err)
		}
		return
	}
	if err != nil {
		if res != nil && res.sentHeader {
			return // the response was streaming; nothing more can be said
		}
		status := http.StatusInternalServerError
		var pe *Error
		switch {
		case errors.As(err, &pe) && pe.Overloaded:
			status = http.StatusServiceUnavailable
		case errors.Is(err, ErrClosed):
			status = http.StatusServiceUnavailable
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return // the client is gone
		}
		http.Error(w, err.Error(), status)
		return
	}
	res.writeTo(w)
}

// serve runs the object's ServeHTTP as a turn. With w, flushed parts of the
// response go to w from the turn (each after a durability point).
func (s *Stub[T]) serve(ctx context.Context, r *http.Request, w http.ResponseWriter) (*httpResult, error) {
	gw := &gatedWriter{header: http.Header{}, out: w, fetch: w == nil}
	v, err := s.ns.rt.host.Call(ctx, s.oid, s.id.name, "ServeHTTP", nil, func(ctx context.Context, inst any) (any, error) {
		gw.ctx = ctx
		inst.(http.Handler).ServeHTTP(gw, r.WithContext(ctx))
		return gw.finish(), nil
	})
	// From here on the turn must not touch w: it may still be running if
	// the caller gave up.
	sent, up := gw.detach()
	if err != nil {
		if up != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				// The turn may have gone on and kept the socket: its
				// object hears that the connection dropped.
				up.Abandon(err)
			} else {
				up.Discard() // the turn failed: the socket goes with its writes
			}
		}
		return &httpResult{sentHeader: sent}, publicError(err)
	}
	res := v.(*httpResult)
	res.upgrade = up
	return res, nil
}

// httpResult is the part of a response not yet sent when the turn ended.
type httpResult struct {
	status     int
	header     http.Header
	body       []byte
	sentHeader bool     // the status and headers already went out with a flush
	upgrade    *ws.Conn // the turn accepted a WebSocket: answer the handshake
}

func (res *httpResult) writeTo(w http.ResponseWriter) {
	if !res.sentHeader {
		h := w.Header()
		for k, v := range res.header {
			h[k] = v
		}
		w.WriteHeader(res.status)
	}
	w.Write(res.body)
}

// gatedWriter is the http.ResponseWriter an object writes to. Writes are
// buffered; Flush is a durability point, after which the buffered part goes
// to the caller's writer (if streaming).
type gatedWriter struct {
	ctx    context.Context
	header http.Header
	status int
	buf    bytes.Buffer

	mu         sync.Mutex
	out        http.ResponseWriter // guarded by mu; nil once the caller is gone (or for Fetch)
	sentHeader bool                // guarded by mu
	fetch      bool                // the request came through Fetch
	detached   bool                // guarded by mu; the caller stopped waiting for the turn
	upgrade    *ws.Conn            // guarded by mu; the socket AcceptWebSocket accepted
}

func (g *gatedWriter) Header() http.Header { return g.header }

func (g *gatedWriter) WriteHeader(code int) {
	if g.status == 0 {
		g.status = code
	}
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if g.status == 0 {
		g.status = http.StatusOK
	}
	return g.buf.Write(p)
}

// Flush makes the turn's writes so far durable, then sends what was
// written. Errors are dropped, as http.Flusher's are; use FlushError.
func (g *gatedWriter) Flush() { g.FlushError() }

// FlushError is Flush with its error (http.ResponseController uses it).
func (g *gatedWriter) FlushError() error {
	if g.status == 0 {
		g.status = http.StatusOK
	}
	g.mu.Lock()
	up := g.upgrade
	g.mu.Unlock()
	if up != nil {
		return &Error{Message: "durable: the request was accepted as a WebSocket: its response cannot be flushed"}
	}
	if err := host.DurabilityPoint(g.ctx); err != nil {
		return publicError(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.out == nil {
		return nil // Fetch: everything is returned at the end
	}
	if !g.sentHeader {
		h := g.out.Header()
		for k, v := range g.header {
			h[k] = v
		}
		g.out.WriteHeader(g.status)
		g.sentHeader = true
	}
	if _, err := g.out.Write(g.buf.Bytes()); err != nil {
		return err
	}
	g.buf.Reset()
	return http.NewResponseController(g.out).Flush()
}

// finish returns what is left to send when the handler returns.
func (g *gatedWriter) finish() *httpResult {
	if g.status == 0 {
		g.status = http.StatusOK
	}
	g.mu.Lock()
	sent := g.sentHeader
	g.mu.Unlock()
	return &httpResult{status: g.status, header: g.header, body: bytes.Clone(g.buf.Bytes()), sentHeader: sent}
}

// detach stops the turn from writing to the caller's writer (and from
// accepting a WebSocket); it reports whether the headers went out and the
// socket the turn accepted, if any.
func (g *gatedWriter) detach() (bool, *ws.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.out = nil
	g.detached = true
	return g.sentHeader, g.upgrade
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
