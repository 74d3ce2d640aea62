package durable_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/internal/wstest"
)

// wsEvent is what a Room saw, reported to the test.
type wsEvent struct {
	kind   string // close, error
	code   int
	reason string
	clean  bool
	err    error
	left   int // sockets still listed during the event
}

// wsRec is shared by a test and its Room objects.
type wsRec struct {
	built  atomic.Int64
	events chan wsEvent
}

// Room accepts sockets and answers commands sent as text messages.
type Room struct {
	st  *durable.State
	rec *wsRec
}

func (r *Room) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var tags []string
	if t := req.URL.Query().Get("tags"); t != "" {
		tags = strings.Split(t, ",")
	}
	sock, err := r.st.AcceptWebSocket(w, req, tags...)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, durable.ErrLimit) {
			status = http.StatusTooManyRequests
		}
		http.Error(w, err.Error(), status)
		return
	}
	if err := r.st.Storage().Exec("INSERT INTO joins(at) VALUES (?)", time.Now().UnixNano()).Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sock.SendText("welcome")
}

func (r *Room) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	cmd, arg, _ := strings.Cut(msg.Text(), ":")
	switch cmd {
	case "echo":
		return ws.SendText(arg)
	case "bin":
		return ws.SendBinary(msg.Data)
	case "count":
		return ws.SendText(fmt.Sprint(len(r.st.WebSockets(arg))))
	case "built":
		return ws.SendText(fmt.Sprint(r.rec.built.Load()))
	case "tags":
		return ws.SendText(strings.Join(r.st.Tags(ws), ","))
	case "attach":
		if err := ws.SerializeAttachment(map[string]string{"v": arg}); err != nil {
			return ws.SendText("error: " + err.Error())
		}
		return ws.SendText("ok")
	case "attachbig":
		err := ws.SerializeAttachment(strings.Repeat("x", 16<<10+1))
		return ws.SendText(fmt.Sprintf("%v %v", errors.Is(err, durable.ErrLimit), err))
	case "getattach":
		var v map[string]string
		if err := ws.DeserializeAttachment(&v); err != nil {
			return err
		}
		return ws.SendText(v["v"])
	case "broadcast":
		for _, o := range r.st.WebSockets("") {
			if o != ws {
				o.SendText(arg)
			}
		}
		return nil
	case "fail":
		ws.SendText("never sent")
		return errors.New("the handler failed on purpose")
	case "panic":
		panic("on purpose")
	case "close":
		return ws.Close(4002, "asked to")
	case "autots":
		ts, ok := r.st.WebSocketAutoResponseTimestamp(ws)
		return ws.SendText(fmt.Sprint(ok && !ts.IsZero()))
	case "joins":
		row, err := r.st.Storage().Exec("SELECT count(*) AS n FROM joins").One()
		if err != nil {
			return err
		}
		return ws.SendText(fmt.Sprint(row["n"]))
	}
	return ws.SendText("unknown " + cmd)
}

func (r *Room) WebSocketClose(ctx context.Context, ws *durable.WebSocket, code int, reason string, clean bool) error {
	r.rec.events <- wsEvent{kind: "close", code: code, reason: reason, clean: clean, left: len(r.st.WebSockets(""))}
	return ws.Close(1000, "") // a no-op: the runtime already answered
}

func (r *Room) WebSocketError(ctx context.Context, ws *durable.WebSocket, err error) error {
	r.rec.events <- wsEvent{kind: "error", err: err, left: len(r.st.WebSockets(""))}
	return nil
}

type wsFixture struct {
	rt  *durable.Runtime
	ns  *durable.Namespace[*Room]
	rec *wsRec
	srv *httptest.Server
	url string
}

func newWSFixture(t *testing.T, cfg durable.Config) *wsFixture {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	rt, err := durable.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &wsRec{events: make(chan wsEvent, 100)}
	ns := durable.Define(rt, "ROOM", func(st *durable.State) (*Room, error) {
		rec.built.Add(1)
		st.SetWebSocketAutoResponse("ping", "pong")
		if err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS joins(at INTEGER)").Err(); err != nil {
			return nil, err
		}
		return &Room{st: st, rec: rec}, nil
	})
	f := &wsFixture{rt: rt, ns: ns, rec: rec}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns.GetByName(strings.TrimPrefix(r.URL.Path, "/")).ServeHTTP(w, r)
	}))
	f.url = "ws" + strings.TrimPrefix(f.srv.URL, "http")
	t.Cleanup(func() {
		f.srv.Close()
		rt.Close(context.Background())
	})
	return f
}

func (f *wsFixture) dial(t *testing.T, path string) *wstest.Client {
	t.Helper()
	cl := wstest.MustDial(t, f.url+path)
	if got := readText(t, cl); got != "welcome" {
		t.Fatalf("first message %q", got)
	}
	return cl
}

func readText(t *testing.T, cl *wstest.Client) string {
	t.Helper()
	m, err := cl.ReadTimeout(10 * time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(m.Data)
}

// ask sends a command and returns the reply.
func ask(t *testing.T, cl *wstest.Client, cmd string) string {
	t.Helper()
	if err := cl.SendText(cmd); err != nil {
		t.Fatal(err)
	}
	return readText(t, cl)
}

func (f *wsFixture) event(t *testing.T) wsEvent {
	t.Helper()
	select {
	case e := <-f.rec.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return wsEvent{}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWebSocketMessagesTagsAndListing(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	a := f.dial(t, "/r1?tags=red,blue")
	b := f.dial(t, "/r1?tags=blue")
	f.dial(t, "/r1")
	if got := ask(t, a, "echo:hi"); got != "hi" {
		t.Fatalf("echo %q", got)
	}
	if err := a.SendBinary([]byte("bin:\x00\x01")); err != nil {
		t.Fatal(err)
	}
	if m, err := a.ReadTimeout(10 * time.Second); err != nil || !m.Binary || string(m.Data) != "bin:\x00\x01" {
		t.Fatalf("binary: %+v %v", m, err)
	}
	for tag, want := range map[string]string{"": "3", "blue": "2", "red": "1", "green": "0"} {
		if got := ask(t, b, "count:"+tag); got != want {
			t.Fatalf("WebSockets(%q) = %s, want %s", tag, got, want)
		}
	}
	if got := ask(t, a, "tags"); got != "red,blue" {
		t.Fatalf("tags %q", got)
	}
	if got := ask(t, b, "joins"); got != "3" {
		t.Fatalf("joins %q", got)
	}
	st := f.rt.Stats()
	if st.WebSockets != 3 || st.HibernatedWebSockets != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWebSocketBroadcastReachesOthersNotSender(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	var cls []*wstest.Client
	for range 4 {
		cls = append(cls, f.dial(t, "/r"))
	}
	cls[0].SendText("broadcast:hello")
	for _, cl := range cls[1:] {
		if got := readText(t, cl); got != "hello" {
			t.Fatalf("got %q", got)
		}
	}
	if m, err := cls[0].ReadTimeout(200 * time.Millisecond); err == nil {
		t.Fatalf("the sender got %q", m.Data)
	}
}

func TestWebSocketHibernationKeepsTagsAndAttachments(t *testing.T) {
	f := newWSFixture(t, durable.Config{HibernateAfter: 50 * time.Millisecond})
	a := f.dial(t, "/h?tags=x,y")
	b := f.dial(t, "/h")
	c := f.dial(t, "/h")
	if got := ask(t, a, "attach:kept"); got != "ok" {
		t.Fatal(got)
	}
	built := f.rec.built.Load()
	waitUntil(t, "the room hibernates", func() bool {
		s := f.rt.Stats()
		return s.Live == 0 && s.HibernatedWebSockets == 3 && s.WebSockets == 3
	})
	// The next message wakes it: a new instance, the same sockets.
	if got := ask(t, a, "getattach"); got != "kept" {
		t.Fatalf("attachment after hibernation %q", got)
	}
	if n := f.rec.built.Load(); n != built+1 {
		t.Fatalf("constructed %d times, want %d", n, built+1)
	}
	if got := ask(t, a, "tags"); got != "x,y" {
		t.Fatalf("tags after hibernation %q", got)
	}
	if got := ask(t, b, "count:"); got != "3" {
		t.Fatalf("sockets after hibernation %q", got)
	}
	if got := ask(t, b, "getattach"); got != "" {
		t.Fatalf("b has no attachment, got %q", got)
	}
	b.SendText("broadcast:after")
	for _, cl := range []*wstest.Client{a, c} {
		if got := readText(t, cl); got != "after" {
			t.Fatalf("broadcast after waking %q", got)
		}
	}
}

func TestWebSocketAutoResponseDoesNotWake(t *testing.T) {
	f := newWSFixture(t, durable.Config{HibernateAfter: 50 * time.Millisecond})
	a := f.dial(t, "/auto")
	waitUntil(t, "hibernation", func() bool { return f.rt.Stats().Live == 0 })
	built := f.rec.built.Load()
	for range 5 {
		if got := ask(t, a, "ping"); got != "pong" {
			t.Fatalf("auto-response %q", got)
		}
	}
	if s := f.rt.Stats(); s.Live != 0 || f.rec.built.Load() != built {
		t.Fatalf("the object woke for an auto-response: %+v", s)
	}
	if got := ask(t, a, "autots"); got != "true" {
		t.Fatalf("timestamp: %s", got)
	}
}

func TestWebSocketLimits(t *testing.T) {
	f := newWSFixture(t, durable.Config{MaxWebSocketsPerObject: 2, MaxWebSocketMessage: 1024})
	a := f.dial(t, "/l")
	f.dial(t, "/l")
	st, err := wstest.DialStatus(context.Background(), f.url+"/l")
	if err != nil || st != http.StatusTooManyRequests {
		t.Fatalf("third socket: %d %v", st, err)
	}
	tags := strings.Repeat("t,", 10) + "t"
	if st, _ := wstest.DialStatus(context.Background(), f.url+"/l2?tags="+tags); st != http.StatusTooManyRequests {
		t.Fatalf("11 tags: %d", st)
	}
	if st, _ := wstest.DialStatus(context.Background(), f.url+"/l2?tags="+strings.Repeat("x", 257)); st != http.StatusTooManyRequests {
		t.Fatalf("a 257-character tag: %d", st)
	}
	if got := ask(t, a, "attachbig"); !strings.HasPrefix(got, "true ") || !strings.Contains(got, "16 KiB") {
		t.Fatalf("oversize attachment: %s", got)
	}
	// A message over MaxWebSocketMessage closes that socket with 1009.
	a.SendText("echo:" + strings.Repeat("x", 1024))
	if code, _, err := a.ExpectClose(10 * time.Second); err != nil || code != 1009 {
		t.Fatalf("close %d %v", code, err)
	}
	e := f.event(t)
	if e.kind != "error" || !strings.Contains(e.err.Error(), "1009") || e.left != 1 {
		t.Fatalf("event %+v", e)
	}
	// The limit counts open sockets: there is room again.
	f.dial(t, "/l")
}

func TestWebSocketHandlerFailureCloses1011AndDropsItsSends(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	for _, cmd := range []string{"fail", "panic"} {
		a := f.dial(t, "/f")
		b := f.dial(t, "/f")
		a.SendText(cmd)
		m, err := a.ReadTimeout(10 * time.Second)
		var ce *wstest.CloseError
		if !errors.As(err, &ce) || ce.Code != 1011 {
			t.Fatalf("%s: got %q %v, want a 1011 close and nothing before it", cmd, m.Data, err)
		}
		if got := ask(t, b, "echo:fine"); got != "fine" {
			t.Fatalf("%s: the other socket: %q", cmd, got)
		}
	}
}

func TestWebSocketCloseEvents(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	a := f.dial(t, "/c")
	b := f.dial(t, "/c")
	a.Close(4000, "bye")
	if code, _, err := a.ExpectClose(10 * time.Second); err != nil || code != 4000 {
		t.Fatalf("echo %d %v", code, err)
	}
	e := f.event(t)
	if e.kind != "close" || e.code != 4000 || e.reason != "bye" || !e.clean || e.left != 1 {
		t.Fatalf("close event %+v", e)
	}
	b.Drop()
	e = f.event(t)
	if e.kind != "close" || e.code != 1006 || e.clean || e.left != 0 {
		t.Fatalf("drop event %+v", e)
	}
	// An object that closes a socket gets no event.
	c := f.dial(t, "/c")
	c.SendText("close")
	if code, reason, err := c.ExpectClose(10 * time.Second); err != nil || code != 4002 || reason != "asked to" {
		t.Fatalf("server close %d %q %v", code, reason, err)
	}
	select {
	case e := <-f.rec.events:
		t.Fatalf("event for a socket the object closed: %+v", e)
	case <-time.After(200 * time.Millisecond):
	}
	waitUntil(t, "no socket left", func() bool { return f.rt.Stats().WebSockets == 0 })
}

func TestWebSocketBadRequests(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	// A plain GET reaches the object, which refuses it.
	res, err := http.Get(f.srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: %d", res.StatusCode)
	}
	// Fetch cannot carry an upgrade.
	req, _ := http.NewRequest("GET", "http://x/", nil)
	req.Header.Set("Upgrade", "websocket")
	if _, err := f.ns.GetByName("x").Fetch(req); !errors.Is(err, durable.ErrNotImplemented) {
		t.Fatalf("Fetch with an upgrade: %v", err)
	}
}

// Plain has no WebSocket handlers.
type Plain struct{ st *durable.State }

func (p *Plain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, err := p.st.AcceptWebSocket(w, r)
	w.WriteHeader(http.StatusNotImplemented)
	fmt.Fprint(w, errors.Is(err, durable.ErrNotImplemented), " ", err)
}

func TestAcceptWebSocketNeedsHandlers(t *testing.T) {
	rt, err := durable.Open(durable.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	ns := durable.Define(rt, "PLAIN", func(st *durable.State) (*Plain, error) { return &Plain{st: st}, nil })
	srv := httptest.NewServer(ns.GetByName("p"))
	defer srv.Close()
	st, err := wstest.DialStatus(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil || st != http.StatusNotImplemented {
		t.Fatalf("%d %v", st, err)
	}
}

func TestCloseSendsGoingAway(t *testing.T) {
	f := newWSFixture(t, durable.Config{})
	a := f.dial(t, "/g")
	b := f.dial(t, "/g2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- f.rt.Close(ctx) }()
	for _, cl := range []*wstest.Client{a, b} {
		if code, _, err := cl.ExpectClose(10 * time.Second); err != nil || code != 1001 {
			t.Fatalf("close %d %v", code, err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// Limits checked inside a turn: an oversize auto-response fails the turn
// with a message naming the limit; a bad close code or reason is an error.
type Strict struct{ st *durable.State }

func (s *Strict) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := s.st.AcceptWebSocket(w, r); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

func (s *Strict) SetAuto(ctx context.Context, n int) (bool, error) {
	s.st.SetWebSocketAutoResponse(strings.Repeat("q", n), "a")
	return true, nil
}

func (s *Strict) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	var out []string
	for _, c := range []struct {
		code   int
		reason string
	}{{1005, ""}, {2999, ""}, {5000, ""}, {4000, strings.Repeat("r", 124)}, {4000, "\xff"}} {
		out = append(out, fmt.Sprint(ws.Close(c.code, c.reason) != nil))
	}
	return ws.SendText(strings.Join(out, ","))
}

func (s *Strict) WebSocketClose(ctx context.Context, ws *durable.WebSocket, code int, reason string, clean bool) error {
	return nil
}

func (s *Strict) WebSocketError(ctx context.Context, ws *durable.WebSocket, err error) error {
	return nil
}

func TestWebSocketArgumentLimits(t *testing.T) {
	rt, err := durable.Open(durable.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	ns := durable.Define(rt, "STRICT", func(st *durable.State) (*Strict, error) { return &Strict{st: st}, nil })
	stub := ns.GetByName("s")
	if ok, err := durable.Call(context.Background(), stub, (*Strict).SetAuto, 2048); !ok || err != nil {
		t.Fatalf("a 2,048-character request: %v", err)
	}
	_, err = durable.Call(context.Background(), stub, (*Strict).SetAuto, 2049)
	if err == nil || !strings.Contains(err.Error(), "2049 characters; the limit is 2048") {
		t.Fatalf("a 2,049-character request: %v", err)
	}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	cl := wstest.MustDial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	if got := ask(t, cl, "x"); got != "true,true,true,true,true" {
		t.Fatalf("bad close codes and reasons accepted: %s", got)
	}
}

// Fenced is a room whose message handler overruns BlockConcurrencyWhile.
type Fenced struct {
	st      *durable.State
	release chan struct{}
}

func (r *Fenced) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if _, err := r.st.AcceptWebSocket(w, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

func (r *Fenced) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	err := r.st.BlockConcurrencyWhile(func(ctx context.Context) error { <-r.release; return nil })
	// The overrun fenced the instance: this turn fails whatever it
	// returns, and what it sends must never leave.
	ws.SendText(fmt.Sprintf("sent by a fenced turn (bcw error: %v)", err))
	return nil
}

func (r *Fenced) WebSocketClose(context.Context, *durable.WebSocket, int, string, bool) error {
	return nil
}

func (r *Fenced) WebSocketError(context.Context, *durable.WebSocket, error) error { return nil }

func TestWebSocketSendAfterFenceIsDropped(t *testing.T) {
	clk := durabletest.NewClock()
	rt := durabletest.New(t, durable.Config{Clock: clk})
	release := make(chan struct{})
	defer close(release)
	ns := durable.Define(rt, "FENCED", func(st *durable.State) (*Fenced, error) {
		return &Fenced{st: st, release: release}, nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns.GetByName("r").ServeHTTP(w, r)
	}))
	defer srv.Close()
	cl := wstest.MustDial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/")
	cl.SendText("go")
	got := make(chan string, 4)
	go func() {
		for {
			m, err := cl.ReadTimeout(20 * time.Second)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(m.Data)
		}
	}()
	// Advance the clock until the overrun fires and the socket is closed
	// (1011 with the fenced instance): nothing may arrive before that.
	deadline := time.After(15 * time.Second)
	for {
		if clk.Timers() > 0 {
			clk.Advance(30 * time.Second)
		}
		select {
		case s := <-got:
			if !strings.HasPrefix(s, "error:") {
				t.Fatalf("the client received %q from a fenced turn", s)
			}
			return
		case <-deadline:
			t.Fatal("the socket was neither written to nor closed within 15 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
