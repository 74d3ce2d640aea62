package ws

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
)

// countingSink counts final events per socket.
type countingSink struct {
	mu     sync.Mutex
	finals map[uint64]int
	msgs   int
}

func (s *countingSink) Message(c *Conn, binary bool, data []byte, done func()) {
	s.mu.Lock()
	s.msgs++
	s.mu.Unlock()
	done()
}

func (s *countingSink) final(c *Conn) {
	s.mu.Lock()
	s.finals[c.ID()]++
	s.mu.Unlock()
}

func (s *countingSink) Closed(c *Conn, code int, reason string, clean bool) { s.final(c) }
func (s *countingSink) Error(c *Conn, err error)                            { s.final(c) }

func maskedFrame(f gws.Frame) []byte {
	var b bytes.Buffer
	gws.WriteFrame(&b, gws.MaskFrame(f))
	return b.Bytes()
}

// FuzzFrames feeds arbitrary bytes to a socket as what its client sent:
// the reader must never panic or hang, and the socket must end with at
// most one final event.
func FuzzFrames(f *testing.F) {
	f.Add(maskedFrame(gws.NewTextFrame([]byte("hello"))))
	f.Add(maskedFrame(gws.NewBinaryFrame([]byte{0, 1, 2})))
	f.Add(append(maskedFrame(gws.NewFrame(gws.OpText, false, []byte("he"))), maskedFrame(gws.NewFrame(gws.OpContinuation, true, []byte("llo")))...))
	f.Add(maskedFrame(gws.NewPingFrame([]byte("p"))))
	f.Add(maskedFrame(gws.NewCloseFrame(gws.NewCloseFrameBody(1000, "bye"))))
	f.Add(maskedFrame(gws.NewTextFrame([]byte{0xff})))
	f.Add(maskedFrame(gws.NewTextFrame(bytes.Repeat([]byte("x"), 300))))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})

	sink := &countingSink{finals: map[uint64]int{}}
	h, err := New(Config{Sink: sink, MaxMessage: 1024, CloseTimeout: 200 * time.Millisecond, FrameTimeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Shutdown(f.Context())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	g := h.Group(key("fuzz"))

	f.Fuzz(func(t *testing.T, data []byte) {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.Accept(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Attach(server, data)
		go func() { // the client drains what the server sends
			buf := make([]byte, 4096)
			for {
				if _, err := client.Read(buf); err != nil {
					return
				}
			}
		}()
		time.Sleep(time.Millisecond)
		client.Close()
		deadline := time.Now().Add(10 * time.Second)
		for h.Connections() > 0 || g.Len() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the socket did not end within 10 s of its client closing (input %x)", data)
			}
			time.Sleep(time.Millisecond)
		}
		sink.mu.Lock()
		n := sink.finals[c.ID()]
		sink.mu.Unlock()
		if n > 1 {
			t.Fatalf("%d final events for one socket (input %x)", n, data)
		}
	})
}
