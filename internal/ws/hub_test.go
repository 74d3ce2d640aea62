package ws

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/wstest"
)

type event struct {
	kind   string // message, closed, error
	c      *Conn
	binary bool
	data   string
	code   int
	reason string
	clean  bool
	err    error
	done   func()
}

// sink records events; with hold, messages are not marked done.
type sink struct {
	ch   chan event
	hold bool
}

func (s *sink) Message(c *Conn, binary bool, data []byte, done func()) {
	s.ch <- event{kind: "message", c: c, binary: binary, data: string(data), done: done}
	if !s.hold {
		done()
	}
}

func (s *sink) Closed(c *Conn, code int, reason string, clean bool) {
	s.ch <- event{kind: "closed", c: c, code: code, reason: reason, clean: clean}
}

func (s *sink) Error(c *Conn, err error) { s.ch <- event{kind: "error", c: c, err: err} }

func (s *sink) next(t *testing.T) event {
	t.Helper()
	select {
	case e := <-s.ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return event{}
	}
}

// none checks no event arrives for a short while.
func (s *sink) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-s.ch:
		t.Fatalf("unexpected event %s %q %v", e.kind, e.data, e.err)
	case <-time.After(d):
	}
}

type fixture struct {
	hub  *Hub
	sink *sink
	srv  *httptest.Server
	url  string
	// accepted receives each socket the server accepted.
	accepted chan *Conn
}

func key(name string) route.ObjectID { return route.ObjectID{Namespace: "T", ID: name} }

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	s := &sink{ch: make(chan event, 100000)}
	if cfg.Sink == nil {
		cfg.Sink = s
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{hub: h, sink: s, accepted: make(chan *Conn, 100000)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := CheckRequest(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var tags []string
		if v := r.URL.Query().Get("tags"); v != "" {
			tags = strings.Split(v, ",")
		}
		c, err := h.Group(key(strings.TrimPrefix(r.URL.Path, "/"))).Accept(tags, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := c.Upgrade(w, r, nil); err != nil {
			t.Logf("upgrade: %v", err)
			return
		}
		f.accepted <- c
	}))
	f.url = "ws" + strings.TrimPrefix(f.srv.URL, "http")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		f.srv.Close()
	})
	return f
}

func (f *fixture) dial(t *testing.T, path string) (*wstest.Client, *Conn) {
	t.Helper()
	cl := wstest.MustDial(t, f.url+path)
	select {
	case c := <-f.accepted:
		return cl, c
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not accept")
		return nil, nil
	}
}

func read(t *testing.T, cl *wstest.Client) wstest.Message {
	t.Helper()
	m, err := cl.ReadTimeout(10 * time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func TestMessagesInOrderBothWays(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	const n = 2000
	go func() {
		for i := range n {
			if i%2 == 0 {
				cl.SendText(fmt.Sprintf("m%d", i))
			} else {
				cl.SendBinary([]byte(fmt.Sprintf("m%d", i)))
			}
		}
	}()
	for i := range n {
		e := f.sink.next(t)
		if e.kind != "message" || e.data != fmt.Sprintf("m%d", i) || e.binary != (i%2 == 1) || e.c != c {
			t.Fatalf("event %d: %+v", i, e)
		}
		if err := c.Send(nil, e.binary, []byte("re:"+e.data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m := read(t, cl)
		if string(m.Data) != fmt.Sprintf("re:m%d", i) || m.Binary != (i%2 == 1) {
			t.Fatalf("reply %d: %q binary=%v", i, m.Data, m.Binary)
		}
	}
}

func TestLargeAndFragmentedMessages(t *testing.T) {
	f := newFixture(t, Config{MaxMessage: 1 << 20})
	cl, c := f.dial(t, "/a")
	big := bytes.Repeat([]byte("x"), 1<<20) // exactly the limit
	if err := cl.SendText(string(big)); err != nil {
		t.Fatal(err)
	}
	if e := f.sink.next(t); e.kind != "message" || len(e.data) != 1<<20 {
		t.Fatalf("got %s of %d bytes", e.kind, len(e.data))
	}
	// A message in three fragments, with a ping between them.
	cl.SendFrame(gws.NewFrame(gws.OpText, false, []byte("hel")), false)
	cl.Ping([]byte("p"))
	cl.SendFrame(gws.NewFrame(gws.OpContinuation, false, []byte("lo ")), false)
	cl.SendFrame(gws.NewFrame(gws.OpContinuation, true, []byte("wörld")), false)
	if e := f.sink.next(t); e.data != "hello wörld" || e.binary {
		t.Fatalf("fragmented message: %+v", e)
	}
	if err := c.Send(nil, true, big); err != nil {
		t.Fatal(err)
	}
	if m := read(t, cl); !m.Binary || len(m.Data) != 1<<20 {
		t.Fatalf("big reply: %d bytes", len(m.Data))
	}
}

func TestOutputWaitsForItsPromiseInOrder(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	p1, p2 := gate.New(), gate.New()
	c.Send(p1, false, []byte("one"))
	c.Send(nil, false, []byte("two")) // ready, but behind "one"
	c.Send(p2, false, []byte("dropped"))
	c.Send(nil, false, []byte("three"))
	if m, err := cl.ReadTimeout(200 * time.Millisecond); err == nil {
		t.Fatalf("%q left before its promise was ready", m.Data)
	}
	p2.Resolve(errors.New("the turn failed")) // ready first, still waits behind p1
	if m, err := cl.ReadTimeout(200 * time.Millisecond); err == nil {
		t.Fatalf("%q overtook an earlier frame", m.Data)
	}
	p1.Resolve(nil)
	for _, want := range []string{"one", "two", "three"} {
		if m := read(t, cl); string(m.Data) != want {
			t.Fatalf("got %q, want %q", m.Data, want)
		}
	}
}

func TestClientCloseIsEchoedAndReported(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	g := c.Group()
	if err := cl.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	code, _, err := cl.ExpectClose(10 * time.Second)
	if err != nil || code != 4000 {
		t.Fatalf("echo: %d %v", code, err)
	}
	e := f.sink.next(t)
	if e.kind != "closed" || e.code != 4000 || e.reason != "bye" || !e.clean {
		t.Fatalf("event %+v", e)
	}
	if g.Len() != 0 {
		t.Fatalf("group still holds %d sockets", g.Len())
	}
	if err := c.Send(nil, false, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	waitFor(t, func() bool { return f.hub.Connections() == 0 })
}

func TestDroppedConnectionIs1006(t *testing.T) {
	f := newFixture(t, Config{})
	cl, _ := f.dial(t, "/a")
	cl.Drop()
	e := f.sink.next(t)
	if e.kind != "closed" || e.code != CloseAbnormal || e.clean {
		t.Fatalf("event %+v", e)
	}
	waitFor(t, func() bool { return f.hub.Connections() == 0 && f.hub.open.Load() == 0 })
}

func TestServerCloseHasNoEvent(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	if err := c.Close(nil, 1004, "x"); err == nil {
		t.Fatal("close code 1004 accepted")
	}
	if err := c.Close(nil, 4001, strings.Repeat("r", 124)); err == nil {
		t.Fatal("a 124-byte reason accepted")
	}
	if err := c.Close(nil, 4001, "done"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(nil, false, []byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	code, reason, err := cl.ExpectClose(10 * time.Second)
	if err != nil || code != 4001 || reason != "done" {
		t.Fatalf("close: %d %q %v", code, reason, err)
	}
	waitFor(t, func() bool { return f.hub.Connections() == 0 })
	f.sink.none(t, 100*time.Millisecond)
}

func TestProtocolViolationsClose(t *testing.T) {
	cases := []struct {
		name string
		send func(cl *wstest.Client)
		code int
	}{
		{"oversize", func(cl *wstest.Client) { cl.SendText(strings.Repeat("x", 1025)) }, CloseMessageTooBig},
		{"oversize fragmented", func(cl *wstest.Client) {
			cl.SendFrame(gws.NewFrame(gws.OpBinary, false, make([]byte, 1000)), false)
			cl.SendFrame(gws.NewFrame(gws.OpContinuation, true, make([]byte, 25)), false)
		}, CloseMessageTooBig},
		{"bad utf-8", func(cl *wstest.Client) { cl.SendFrame(gws.NewTextFrame([]byte{0xff, 0xfe}), false) }, CloseInvalidPayload},
		{"unmasked", func(cl *wstest.Client) { cl.SendFrame(gws.NewTextFrame([]byte("hi")), true) }, CloseProtocolError},
		{"reserved opcode", func(cl *wstest.Client) { cl.SendFrame(gws.NewFrame(gws.OpCode(3), true, nil), false) }, CloseProtocolError},
		{"lone continuation", func(cl *wstest.Client) { cl.SendFrame(gws.NewFrame(gws.OpContinuation, true, []byte("x")), false) }, CloseProtocolError},
		{"rsv bits", func(cl *wstest.Client) {
			fr := gws.NewTextFrame([]byte("x"))
			fr.Header.Rsv = gws.Rsv(true, false, false)
			cl.SendFrame(fr, false)
		}, CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{MaxMessage: 1024})
			cl, _ := f.dial(t, "/a")
			other, _ := f.dial(t, "/a")
			tc.send(cl)
			code, _, err := cl.ExpectClose(10 * time.Second)
			if err != nil || code != tc.code {
				t.Fatalf("close code %d (%v), want %d", code, err, tc.code)
			}
			e := f.sink.next(t)
			var pe *ProtocolError
			if e.kind != "error" || !errors.As(e.err, &pe) || pe.Code != tc.code {
				t.Fatalf("event %+v", e)
			}
			// Another client is unaffected.
			other.SendText("still here")
			if e := f.sink.next(t); e.kind != "message" || e.data != "still here" {
				t.Fatalf("other client: %+v", e)
			}
			waitFor(t, func() bool { return f.hub.Connections() == 1 })
		})
	}
}

func TestPingAnsweredWithoutEvent(t *testing.T) {
	f := newFixture(t, Config{})
	cl, _ := f.dial(t, "/a")
	cl.Ping([]byte("hi"))
	cl.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr, err := gws.ReadFrame(bufioOf(cl))
	if err != nil || fr.Header.OpCode != gws.OpPong || string(fr.Payload) != "hi" {
		t.Fatalf("pong: %+v %v", fr.Header, err)
	}
	f.sink.none(t, 100*time.Millisecond)
}

func bufioOf(cl *wstest.Client) net.Conn { return cl.Conn }

func TestAutoResponseWithoutEvent(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	g := c.Group()
	if err := g.SetAutoResponse(strings.Repeat("q", 2049), "x"); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("oversize request: %v", err)
	}
	if err := g.SetAutoResponse("ping", "pong"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.AutoResponseTime(); ok {
		t.Fatal("a timestamp before any auto-response")
	}
	before := time.Now()
	cl.SendText("ping")
	if m := read(t, cl); string(m.Data) != "pong" {
		t.Fatalf("got %q", m.Data)
	}
	if ts, ok := c.AutoResponseTime(); !ok || ts.Before(before) {
		t.Fatalf("timestamp %v %v", ts, ok)
	}
	cl.SendBinary([]byte("ping")) // binary never matches
	cl.SendText("pingx")
	if e := f.sink.next(t); e.data != "ping" || !e.binary {
		t.Fatalf("%+v", e)
	}
	if e := f.sink.next(t); e.data != "pingx" {
		t.Fatalf("%+v", e)
	}
	g.SetAutoResponse("", "")
	cl.SendText("ping")
	if e := f.sink.next(t); e.data != "ping" || e.binary {
		t.Fatalf("after removal: %+v", e)
	}
}

func TestBackPressurePausesReading(t *testing.T) {
	f := newFixture(t, Config{MaxInflight: 4})
	f.sink.hold = true
	cl, _ := f.dial(t, "/a")
	const n = 200
	go func() {
		for i := range n {
			cl.SendText(fmt.Sprint(i))
		}
	}()
	var got []event
	for range 4 {
		got = append(got, f.sink.next(t))
	}
	f.sink.none(t, 200*time.Millisecond) // paused: nothing more is read
	for i := 0; i < n; i++ {
		if i >= len(got) {
			got = append(got, f.sink.next(t))
		}
		if got[i].data != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, got[i].data)
		}
		got[i].done()
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, Config{MaxPerGroup: 2})
	f.dial(t, "/a")
	f.dial(t, "/a")
	g := f.hub.Group(key("a"))
	if _, err := g.Accept(nil, nil); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("third socket: %v", err)
	}
	if st, err := wstest.DialStatus(context.Background(), f.url+"/a"); err != nil || st != http.StatusBadRequest {
		t.Fatalf("third dial: %d %v", st, err)
	}
	g2 := f.hub.Group(key("b"))
	tags := make([]string, 11)
	for i := range tags {
		tags[i] = fmt.Sprint(i)
	}
	if _, err := g2.Accept(tags, nil); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("11 tags: %v", err)
	}
	if _, err := g2.Accept([]string{strings.Repeat("é", 257)}, nil); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("257-character tag: %v", err)
	}
	if _, err := g2.Accept([]string{""}, nil); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("empty tag: %v", err)
	}
	c, err := g2.Accept(tags[:10], nil)
	if err != nil {
		t.Fatalf("10 tags: %v", err)
	}
	if err := c.SetAttachment(make([]byte, 16<<10+1)); !errors.Is(err, errs.ErrLimit) {
		t.Fatalf("oversize attachment: %v", err)
	}
	if err := c.SetAttachment(make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	c.Discard()
}

func TestTagsAndListing(t *testing.T) {
	f := newFixture(t, Config{})
	_, a := f.dial(t, "/room?tags=red,blue")
	_, b := f.dial(t, "/room?tags=blue")
	_, c := f.dial(t, "/room")
	g := f.hub.Group(key("room"))
	names := func(cs []*Conn) []uint64 {
		var ids []uint64
		for _, x := range cs {
			ids = append(ids, x.ID())
		}
		return ids
	}
	if got := names(g.List("")); fmt.Sprint(got) != fmt.Sprint([]uint64{a.ID(), b.ID(), c.ID()}) {
		t.Fatalf("all: %v", got)
	}
	if got := names(g.List("blue")); fmt.Sprint(got) != fmt.Sprint([]uint64{a.ID(), b.ID()}) {
		t.Fatalf("blue: %v", got)
	}
	if got := g.List("green"); len(got) != 0 {
		t.Fatalf("green: %v", got)
	}
	if fmt.Sprint(a.Tags()) != "[red blue]" {
		t.Fatalf("tags %v", a.Tags())
	}
}

func TestHandshakeBytesPipelinedWithFirstFrame(t *testing.T) {
	f := newFixture(t, Config{})
	nc, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var buf bytes.Buffer
	buf.WriteString("GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	gws.WriteFrame(&buf, gws.MaskFrame(gws.NewTextFrame([]byte("early"))))
	nc.Write(buf.Bytes())
	if e := f.sink.next(t); e.kind != "message" || e.data != "early" {
		t.Fatalf("%+v", e)
	}
}

func TestShutdownCloses1001(t *testing.T) {
	f := newFixture(t, Config{})
	var cls []*wstest.Client
	for range 5 {
		cl, c := f.dial(t, "/a")
		c.Send(nil, false, []byte("before"))
		cls = append(cls, cl)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.hub.Shutdown(ctx) }()
	for _, cl := range cls {
		if m := read(t, cl); string(m.Data) != "before" {
			t.Fatalf("%q", m.Data)
		}
		code, _, err := cl.ExpectClose(10 * time.Second)
		if err != nil || code != CloseGoingAway {
			t.Fatalf("close %d %v", code, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := f.hub.Connections(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	f.sink.none(t, 50*time.Millisecond)
}

func TestIdleSocketsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll loop is Linux only")
	}
	f := newFixture(t, Config{})
	base := runtime.NumGoroutine()
	const n = 300
	var mu sync.Mutex
	var conns []net.Conn
	for range n {
		cl, _ := f.dial(t, "/idle")
		mu.Lock()
		conns = append(conns, cl.Conn)
		mu.Unlock()
	}
	// Each socket read once (one message), then went idle.
	for _, nc := range conns {
		gws.WriteFrame(nc, gws.MaskFrame(gws.NewTextFrame([]byte("hi"))))
	}
	for range n {
		f.sink.next(t)
	}
	var g int
	waitFor(t, func() bool {
		g = runtime.NumGoroutine()
		return g-base < 20
	})
	t.Logf("%d idle sockets: %d goroutines more than before", n, g-base)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
