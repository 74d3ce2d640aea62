package durable_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/durable-go/durable"
)

// EchoRoom accepts WebSockets and answers each message; it may hibernate
// between messages (its sockets stay open).
type EchoRoom struct{ st *durable.State }

func (e *EchoRoom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := e.st.AcceptWebSocket(w, r, "echo"); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
	// The runtime answers the handshake once this turn's writes are
	// durable.
}

func (e *EchoRoom) WebSocketMessage(ctx context.Context, sock *durable.WebSocket, msg durable.Message) error {
	var n int64
	if _, err := e.st.Storage().Get("messages", &n); err != nil {
		return err
	}
	n++
	if err := e.st.Storage().Put("messages", n); err != nil {
		return err
	}
	// Held by the output gate: it leaves once the count is durable.
	return sock.SendText(fmt.Sprintf("#%d: %s (%d open)", n, msg.Text(), len(e.st.WebSockets("echo"))))
}

func (e *EchoRoom) WebSocketClose(ctx context.Context, sock *durable.WebSocket, code int, reason string, wasClean bool) error {
	return nil
}

func (e *EchoRoom) WebSocketError(ctx context.Context, sock *durable.WebSocket, err error) error {
	return nil
}

// A class implementing WebSocketHandler accepts sockets in its ServeHTTP;
// front code proxies the upgrade with Stub.ServeHTTP.
func Example_webSocket() {
	rt, err := durable.Open(durable.Config{HibernateAfter: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer rt.Close(context.Background())
	echoes := durable.Define(rt, "ECHOROOM", func(st *durable.State) (*EchoRoom, error) { return &EchoRoom{st: st}, nil })

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		echoes.GetByName(r.URL.Path).ServeHTTP(w, r)
	}))
	defer srv.Close()

	conn, br, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/room")
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	// A frame may have arrived with the handshake response, in br.
	var rd io.Reader = conn
	if br != nil {
		rd = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{rd, conn}
	ask := func(text string) string {
		wsutil.WriteClientText(conn, []byte(text))
		reply, err := wsutil.ReadServerText(rw)
		if err != nil {
			return err.Error()
		}
		return string(reply)
	}
	fmt.Println(ask("hello"))
	// Idle for HibernateAfter, the object is evicted; the socket stays open.
	for deadline := time.Now().Add(10 * time.Second); rt.Stats().Live > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("live objects:", rt.Stats().Live, "hibernated sockets:", rt.Stats().HibernatedWebSockets)
	fmt.Println(ask("again")) // wakes it
	// Output:
	// #1: hello (1 open)
	// live objects: 0 hibernated sockets: 1
	// #2: again (1 open)
}
