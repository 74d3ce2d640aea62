package durable

import (
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"net/http"
	"time"

	"github.com/durable-go/durable/internal/codec"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/ws"
)

// WebSocketHandler is implemented by a class that accepts WebSockets: the
// runtime delivers each socket event as a turn, constructing the object
// first if it hibernated. Events are never refused for a full mailbox and
// never dropped.
//
// WebSocketMessage gets each complete message a client sends. If it
// returns an error or panics, the socket is closed with 1011.
//
// WebSocketClose runs once the client closed the socket (the runtime has
// already answered its close frame, so ws.Close there does nothing) or the
// connection dropped (code 1006, wasClean false). WebSocketError runs when
// the runtime closed the socket because of an error: the client broke the
// protocol or a limit (a message over Config.MaxWebSocketMessage is closed
// with 1009) or could not be written to. A socket gets at most one of the
// two, and neither when the object closed it itself.
type WebSocketHandler interface {
	WebSocketMessage(ctx context.Context, ws *WebSocket, msg Message) error
	WebSocketClose(ctx context.Context, ws *WebSocket, code int, reason string, wasClean bool) error
	WebSocketError(ctx context.Context, ws *WebSocket, err error) error
}

// Message is one WebSocket message.
type Message struct {
	Binary bool
	Data   []byte
}

// Text returns the message's data as a string.
func (m Message) Text() string { return string(m.Data) }

// WebSocket is a connection the runtime holds for an object. The same
// *WebSocket stands for the connection for its whole life, across
// hibernation, so it can be compared with == and used as a map key.
type WebSocket struct {
	rt *Runtime
	c  *ws.Conn
}

// SendText sends a text message. Like every output it is held by the
// output gate: it leaves once the writes the turn made before it are
// durable, and it is dropped if the turn fails (its writes roll back).
// Messages to one socket leave in the order they were sent. A socket that
// is closing gives an error wrapping ErrWebSocketClosed.
func (w *WebSocket) SendText(s string) error { return w.send("SendText", false, []byte(s)) }

// SendBinary sends a binary message, held by the output gate as SendText.
func (w *WebSocket) SendBinary(b []byte) error { return w.send("SendBinary", true, b) }

func (w *WebSocket) send(op string, binary bool, b []byte) error {
	if err := w.check(op); err != nil {
		return err
	}
	if err := w.c.Send(w.rt.host.OutputPromise(w.c.Key()), binary, b); err != nil {
		return wsError(op, err)
	}
	if m := w.rt.namespaceMetricsOf(w.c.Key().Namespace); m != nil {
		m.WSMessagesOut.IncAt(metrics.StripeOf(w.c.Key().ID))
	}
	return nil
}

// Close closes the connection with a close code (1000–1003, 1007–1014 or
// 3000–4999) and a reason of at most 123 bytes, after the messages already
// sent. The close frame waits for the writes made before it to be durable,
// but unlike a message it is not taken back if the turn then fails: the
// socket leaves WebSockets() at once and is closed whatever the turn's
// outcome. The object gets no close event for a socket it closed. Closing
// a closed socket does nothing.
func (w *WebSocket) Close(code int, reason string) error {
	if err := w.check("Close"); err != nil {
		return err
	}
	if err := ws.CheckClose(code, reason); err != nil {
		return &Error{Message: "durable: WebSocket.Close: " + err.Error()}
	}
	if err := w.c.Close(w.rt.host.OutputPromise(w.c.Key()), code, reason); err != nil && !errors.Is(err, ws.ErrClosed) {
		return wsError("Close", err)
	}
	return nil
}

// SerializeAttachment keeps a copy of v with the connection: it survives
// hibernation and is gone when the socket closes. v is encoded as Storage
// values are (anything encoding/json round-trips; at most 16 KiB encoded,
// beyond which the error wraps ErrLimit). Later changes to v are not
// reflected until it is called again.
func (w *WebSocket) SerializeAttachment(v any) error {
	if err := w.check("SerializeAttachment"); err != nil {
		return err
	}
	b, err := codec.Marshal(v)
	if err != nil {
		return &Error{Message: "durable: WebSocket.SerializeAttachment: " + err.Error()}
	}
	if err := w.c.SetAttachment(b); err != nil {
		return wsError("SerializeAttachment", err)
	}
	return nil
}

// DeserializeAttachment decodes the connection's attachment into dst (a
// pointer). If none was serialized, dst is left as it is and the result is
// nil.
func (w *WebSocket) DeserializeAttachment(dst any) error {
	if err := w.check("DeserializeAttachment"); err != nil {
		return err
	}
	b := w.c.Attachment()
	if b == nil {
		return nil
	}
	if err := codec.Unmarshal(b, dst); err != nil {
		return &Error{Message: "durable: WebSocket.DeserializeAttachment: " + err.Error()}
	}
	return nil
}

func (w *WebSocket) check(op string) error {
	if w == nil || w.c == nil {
		return &Error{Message: "durable: WebSocket." + op + " on a nil WebSocket"}
	}
	return nil
}

func wsError(op string, err error) error {
	if errors.Is(err, ws.ErrClosed) {
		return &Error{Message: "durable: WebSocket." + op + ": the WebSocket is closed", Err: ErrWebSocketClosed}
	}
	return &Error{Message: "durable: WebSocket." + op + ": " + err.Error(), Err: errs.Sentinel(err)}
}

// AcceptWebSocket accepts the request as a WebSocket the runtime holds for
// the object, with up to 10 tags of at most 256 characters each. Call it
// from the object's ServeHTTP with the ResponseWriter it received, for a
// request that reached the object through Stub.ServeHTTP (Fetch cannot
// carry an upgrade), then return without writing a response: the runtime
// answers the handshake (101) once the turn ended and its writes are
// durable. Messages sent on the socket in the same turn follow the
// handshake. If the turn fails, the socket is dropped with its writes.
// Headers the handler sets on w go out with the 101; to choose a
// subprotocol, set Sec-WebSocket-Protocol to one the client offered.
//
// The class must implement WebSocketHandler. More than
// Config.MaxWebSocketsPerObject sockets (hibernated ones included), too
// many or too long tags give an error wrapping ErrLimit; a request that is
// not a valid WebSocket handshake gives an error (answer it 400).
func (s *State) AcceptWebSocket(w http.ResponseWriter, r *http.Request, tags ...string) (*WebSocket, error) {
	fail := func(msg string, sentinel error) (*WebSocket, error) {
		return nil, &Error{Message: "durable: AcceptWebSocket: " + msg, Err: sentinel}
	}
	if !s.wsHandler {
		return fail(s.storage.className+" does not implement durable.WebSocketHandler", ErrNotImplemented)
	}
	gw := gatedFrom(w)
	if gw == nil {
		return fail("w must be the http.ResponseWriter the object's ServeHTTP received", nil)
	}
	if err := ws.CheckRequest(r); err != nil {
		return fail(err.Error(), nil)
	}
	if host.ActivationFrom(gw.ctx) != s.a || s.a.Gen() != s.gen {
		return fail("the request belongs to another object or instance", nil)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	switch {
	case gw.fetch:
		return fail("the request came through Fetch, which cannot carry a WebSocket upgrade; proxy it with Stub.ServeHTTP", ErrNotImplemented)
	case gw.detached:
		return fail("the client is gone", ErrWebSocketClosed)
	case gw.sentHeader:
		return fail("a response was already flushed", nil)
	case gw.upgrade != nil:
		return fail("the request was already accepted", nil)
	}
	rt := s.rt
	c, err := rt.hub.Group(s.a.ID()).Accept(tags, func(c *ws.Conn) any { return &WebSocket{rt: rt, c: c} })
	if err != nil {
		return fail(err.Error(), errs.Sentinel(err))
	}
	gw.upgrade = c
	return c.User.(*WebSocket), nil
}

// gatedFrom finds the runtime's writer under w (middleware may wrap it,
// with an Unwrap method as http.ResponseController expects).
func gatedFrom(w http.ResponseWriter) *gatedWriter {
	for w != nil {
		if gw, ok := w.(*gatedWriter); ok {
			return gw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// WebSockets returns the object's open sockets with tag ("" = all), in the
// order they were accepted; hibernation keeps them. A socket leaves the
// list as soon as it starts closing.
func (s *State) WebSockets(tag string) []*WebSocket {
	g := s.rt.hub.Lookup(s.a.ID())
	if g == nil {
		return nil
	}
	cs := g.List(tag)
	out := make([]*WebSocket, len(cs))
	for i, c := range cs {
		out[i] = c.User.(*WebSocket)
	}
	return out
}

// Tags returns a socket's tags (nil for a socket of another object).
func (s *State) Tags(w *WebSocket) []string {
	if w == nil || w.c == nil || w.c.Key() != s.a.ID() {
		return nil
	}
	return append([]string(nil), w.c.Tags()...)
}

// SetWebSocketAutoResponse makes every socket of the object answer a text
// message exactly equal to request with response, without waking the
// object or delivering the message ("", "" removes it). It stays set while
// the object is live or has sockets. Each is at most 2,048 characters; a
// longer one, or an empty request with a response, panics (a programming
// error, which fails the turn).
func (s *State) SetWebSocketAutoResponse(request, response string) {
	if err := s.rt.hub.Group(s.a.ID()).SetAutoResponse(request, response); err != nil {
		panic(&Error{Message: "durable: SetWebSocketAutoResponse: " + err.Error(), Err: ErrLimit})
	}
}

// WebSocketAutoResponseTimestamp returns when ws last sent the
// auto-response (false if it never did).
func (s *State) WebSocketAutoResponseTimestamp(w *WebSocket) (time.Time, bool) {
	if w == nil || w.c == nil {
		return time.Time{}, false
	}
	return w.c.AutoResponseTime()
}

// wsEvents turns socket events into turns of the socket's object.
type wsEvents struct{ rt *Runtime }

func (e wsEvents) handler(inst any) (WebSocketHandler, error) {
	h, ok := inst.(WebSocketHandler)
	if !ok {
		return nil, &Error{Message: fmt.Sprintf("durable: %T does not implement durable.WebSocketHandler", inst), Err: ErrNotImplemented}
	}
	return h, nil
}

func (e wsEvents) Message(c *ws.Conn, binary bool, data []byte, done func()) {
	sock := c.User.(*WebSocket)
	if m := e.rt.namespaceMetricsOf(c.Key().Namespace); m != nil {
		m.WSMessagesIn.IncAt(metrics.StripeOf(c.Key().ID))
	}
	msg := Message{Binary: binary, Data: data}
	err := e.rt.host.PostFunc(c.Key(), "WebSocketMessage", func(ctx context.Context, inst any) (any, error) {
		h, err := e.handler(inst)
		if err != nil {
			return nil, err
		}
		return nil, h.WebSocketMessage(ctx, sock, msg)
	}, func(r host.Reply) {
		done()
		switch {
		case r.Err == nil:
		case errors.Is(r.Err, ErrClosed):
			c.Close(nil, ws.CloseGoingAway, "the server is shutting down")
		default:
			e.rt.cfg.Logger.Warn("durable: WebSocketMessage failed; the socket is closed with 1011",
				"namespace", c.Key().Namespace, "id", c.Key().ID, "err", r.Err)
			c.Close(r.P, ws.CloseInternalError, "the object's handler failed")
		}
	})
	if err != nil {
		done()
		code, reason := ws.CloseInternalError, "the object could not take the message"
		if errors.Is(err, ErrClosed) {
			code, reason = ws.CloseGoingAway, "the server is shutting down"
		}
		e.rt.cfg.Logger.Warn("durable: a WebSocket message could not be delivered; the socket is closed",
			"namespace", c.Key().Namespace, "id", c.Key().ID, "code", code, "err", err)
		c.Close(nil, code, reason)
	}
}

func (e wsEvents) Closed(c *ws.Conn, code int, reason string, clean bool) {
	sock := c.User.(*WebSocket)
	e.post(c, "WebSocketClose", func(ctx context.Context, h WebSocketHandler) error {
		return h.WebSocketClose(ctx, sock, code, reason, clean)
	})
}

func (e wsEvents) Error(c *ws.Conn, err error) {
	sock := c.User.(*WebSocket)
	e.post(c, "WebSocketError", func(ctx context.Context, h WebSocketHandler) error {
		return h.WebSocketError(ctx, sock, err)
	})
}

func (e wsEvents) post(c *ws.Conn, name string, fn func(context.Context, WebSocketHandler) error) {
	log := e.rt.cfg.Logger
	err := e.rt.host.PostFunc(c.Key(), name, func(ctx context.Context, inst any) (any, error) {
		h, err := e.handler(inst)
		if err != nil {
			return nil, err
		}
		return nil, fn(ctx, h)
	}, func(r host.Reply) {
		if r.Err != nil {
			log.Warn("durable: "+name+" failed", "namespace", c.Key().Namespace, "id", c.Key().ID, "err", r.Err)
		}
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		log.Warn("durable: "+name+" could not be delivered", "namespace", c.Key().Namespace, "id", c.Key().ID, "err", err)
	}
}
