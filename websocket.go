package durable

import (
	"context"
	"net/http"
	"time"
)

// WebSocketHandler is implemented by a class that accepts WebSockets: the
// runtime delivers each socket event as a turn.
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

// WebSocket is a connection the runtime holds for an object.
type WebSocket struct{}

var errWebSocketsPending = &Error{Message: "durable: WebSockets are not available yet in this version", Err: ErrNotImplemented}

// SendText sends a text message (held by the output gate).
func (ws *WebSocket) SendText(s string) error { return errWebSocketsPending }

// SendBinary sends a binary message (held by the output gate).
func (ws *WebSocket) SendBinary(b []byte) error { return errWebSocketsPending }

// Close closes the connection with a close code and reason.
func (ws *WebSocket) Close(code int, reason string) error { return errWebSocketsPending }

// SerializeAttachment keeps v (≤ 16 KiB encoded) with the connection.
func (ws *WebSocket) SerializeAttachment(v any) error { return errWebSocketsPending }

// DeserializeAttachment decodes the connection's attachment into dst.
func (ws *WebSocket) DeserializeAttachment(dst any) error { return errWebSocketsPending }

// AcceptWebSocket upgrades the request (inside the object's ServeHTTP) to
// a WebSocket the runtime holds, with tags.
func (s *State) AcceptWebSocket(w http.ResponseWriter, r *http.Request, tags ...string) (*WebSocket, error) {
	return nil, errWebSocketsPending
}

// WebSockets returns the object's open sockets with tag ("" = all).
func (s *State) WebSockets(tag string) []*WebSocket { return nil }

// Tags returns a socket's tags.
func (s *State) Tags(ws *WebSocket) []string { return nil }

// SetWebSocketAutoResponse makes every socket of the object answer the text
// request with response without waking the object ("", "" removes it).
func (s *State) SetWebSocketAutoResponse(request, response string) {}

// WebSocketAutoResponseTimestamp returns when ws last sent the
// auto-response.
func (s *State) WebSocketAutoResponseTimestamp(ws *WebSocket) (time.Time, bool) {
	return time.Time{}, false
}
