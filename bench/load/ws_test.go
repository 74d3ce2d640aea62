package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// mustPipe returns a client wsConn and the server end of an in-memory
// connection, both closed at cleanup.
func mustPipe(tb testing.TB) (*wsConn, net.Conn) {
	tb.Helper()
	client, server := net.Pipe()
	tb.Cleanup(func() {
		client.Close()
		server.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	return &wsConn{conn: client, src: client}, server
}

func TestWsConn_readMessage(t *testing.T) {
	c, server := mustPipe(t)
	pong := make(chan ws.Frame, 1)
	go func() {
		// A message in two fragments with a ping between them, then a
		// close frame.
		ws.WriteFrame(server, ws.NewFrame(ws.OpText, false, []byte("hel")))
		ws.WriteFrame(server, ws.NewPingFrame([]byte("p")))
		f, err := ws.ReadFrame(server) // the client's pong
		if err == nil {
			pong <- ws.UnmaskFrameInPlace(f)
		}
		ws.WriteFrame(server, ws.NewFrame(ws.OpContinuation, true, []byte("lo")))
		ws.WriteFrame(server, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
		ws.ReadFrame(server) // the client's close reply
	}()

	msg, err := c.readMessage()
	if err != nil || string(msg) != "hello" {
		t.Fatalf("readMessage = %q, %v; want \"hello\"", msg, err)
	}
	f := <-pong
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "p" {
		t.Errorf("answer to ping: op %v payload %q", f.Header.OpCode, f.Payload)
	}
	if _, err := c.readMessage(); err == nil || !strings.Contains(err.Error(), "1001") {
		t.Errorf("after close frame: err = %v, want one naming status 1001", err)
	}
}

func TestWsConn_sendIsMasked(t *testing.T) {
	c, server := mustPipe(t)
	go c.send(ws.OpText, []byte("abc"))
	f, err := ws.ReadFrame(bufio.NewReader(server))
	if err != nil {
		t.Fatal(err)
	}
	if !f.Header.Masked {
		t.Error("client frame not masked")
	}
	f = ws.UnmaskFrameInPlace(f)
	if f.Header.OpCode != ws.OpText || !f.Header.Fin || string(f.Payload) != "abc" {
		t.Errorf("frame %+v payload %q", f.Header, f.Payload)
	}
}

func TestWsConn_readMessageTooLarge(t *testing.T) {
	c, server := mustPipe(t)
	go ws.WriteHeader(server, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: maxMessage + 1})
	if _, err := c.readMessage(); err == nil {
		t.Error("oversized message accepted")
	}
}

func TestFanIn(t *testing.T) {
	f := &fanIn{want: 3, all: make(chan struct{}, 1)}
	f.expect(7)
	f.received(payload(0, 6, 32)) // an old message does not count
	f.received(payload(0, 7, 32))
	f.received([]byte("garbage"))
	f.received(payload(1, 7, 32))
	select {
	case <-f.all:
		t.Fatal("signalled after 2 of 3")
	default:
	}
	f.received(payload(2, 7, 32))
	select {
	case <-f.all:
	default:
		t.Fatal("no signal after 3 of 3")
	}
}

func TestPayload(t *testing.T) {
	p := payload(12, 345, 32)
	if len(p) != 32 || !strings.HasPrefix(string(p), "345 12 x") {
		t.Errorf("payload = %q", p)
	}
}

func TestWsURL(t *testing.T) {
	got := wsURL("http://127.0.0.1:8787", "r1", "broadcast")
	if want := "ws://127.0.0.1:8787/room/r1/ws?mode=broadcast"; got != want {
		t.Errorf("wsURL = %q, want %q", got, want)
	}
}
