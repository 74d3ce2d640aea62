// Package chat is a chat room per name: members connect with a WebSocket,
// every text message is stored in the room's SQLite database and sent to
// the other members, and a member who joins gets the last 50 messages
// first. A room with no traffic hibernates: its instance is evicted while
// the members' sockets stay open, and the next message wakes it.
//
//	GET /chat/{room} (WebSocket) → the last 50 messages, oldest first, then
//	                               every message another member sends
//
// A text message is at most 65,536 bytes: a larger one closes that
// member's socket with 1009, a binary one with 1003; other members are
// unaffected.
package chat

import (
	"context"
	"errors"
	"net/http"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/httpjson"
)

// MaxMessage is the largest message a member may send, in bytes.
const MaxMessage = 64 << 10

// History is how many stored messages a member gets on joining.
const History = 50

// Room is one chat room.
type Room struct {
	st *durable.State
}

// New is the class constructor: it creates the room's table once.
func New(st *durable.State) (*Room, error) {
	err := st.Storage().Exec(`CREATE TABLE IF NOT EXISTS messages (
		id   INTEGER PRIMARY KEY AUTOINCREMENT,
		text TEXT NOT NULL
	)`).Err()
	return &Room{st: st}, err
}

// ServeHTTP accepts a member's WebSocket and sends it the history.
func (r *Room) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ws, err := r.st.AcceptWebSocket(w, req)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, durable.ErrLimit) {
			status = http.StatusTooManyRequests
		}
		httpjson.Error(w, status, err.Error())
		return
	}
	cur := r.st.Storage().Exec(`SELECT text FROM (
		SELECT id, text FROM messages ORDER BY id DESC LIMIT ?
	) ORDER BY id`, History)
	for cur.Next() {
		var text string
		if err := cur.Scan(&text); err != nil {
			ws.Close(1011, "the history could not be read")
			return
		}
		ws.SendText(text)
	}
	if err := cur.Err(); err != nil {
		ws.Close(1011, "the history could not be read")
	}
}

// WebSocketMessage stores a member's message and sends it to the others.
func (r *Room) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	if msg.Binary {
		return ws.Close(1003, "binary messages are not accepted; send text")
	}
	if len(msg.Data) > MaxMessage {
		return ws.Close(1009, "a message is at most 65536 bytes")
	}
	text := msg.Text()
	if err := r.st.Storage().Exec("INSERT INTO messages(text) VALUES (?)", text).Err(); err != nil {
		return err
	}
	for _, other := range r.st.WebSockets("") {
		if other != ws {
			// A member that is closing misses the message; others still
			// get it.
			other.SendText(text)
		}
	}
	return nil
}

// WebSocketClose is called when a member leaves; the room keeps nothing
// per member.
func (r *Room) WebSocketClose(ctx context.Context, ws *durable.WebSocket, code int, reason string, wasClean bool) error {
	return nil
}

// WebSocketError is called when the runtime closed a member's socket
// because of an error.
func (r *Room) WebSocketError(ctx context.Context, ws *durable.WebSocket, err error) error {
	return nil
}

// Define binds the class as namespace CHAT.
func Define(rt *durable.Runtime) *durable.Namespace[*Room] {
	return durable.Define(rt, "CHAT", New)
}

// Mount registers the chat route on mux.
func Mount(mux *http.ServeMux, ns *durable.Namespace[*Room]) {
	mux.HandleFunc("/chat/{room}", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.WebSocket(w, r) {
			return
		}
		ns.GetByName(r.PathValue("room")).ServeHTTP(w, r)
	})
}
