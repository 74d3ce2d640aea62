package chat_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/examples/chat"
	"github.com/durable-go/durable/internal/wstest"
)

type server struct {
	rt  *durable.Runtime
	srv *httptest.Server
	url string
}

func start(t *testing.T, rt *durable.Runtime) *server {
	t.Helper()
	mux := http.NewServeMux()
	chat.Mount(mux, chat.Define(rt))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &server{rt: rt, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

func read(t *testing.T, cl *wstest.Client) string {
	t.Helper()
	m, err := cl.ReadTimeout(10 * time.Second)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if m.Binary {
		t.Fatal("a binary message")
	}
	return string(m.Data)
}

func quiet(t *testing.T, cl *wstest.Client) {
	t.Helper()
	if m, err := cl.ReadTimeout(150 * time.Millisecond); err == nil {
		t.Fatalf("unexpected message %q", m.Data)
	}
}

func TestOthersGetMessagesSenderDoesNot(t *testing.T) {
	s := start(t, durabletest.New(t))
	a := wstest.MustDial(t, s.url+"/chat/lobby")
	b := wstest.MustDial(t, s.url+"/chat/lobby")
	c := wstest.MustDial(t, s.url+"/chat/lobby")
	other := wstest.MustDial(t, s.url+"/chat/elsewhere")
	a.SendText("hello from a")
	for _, cl := range []*wstest.Client{b, c} {
		if got := read(t, cl); got != "hello from a" {
			t.Fatalf("got %q", got)
		}
	}
	quiet(t, a)
	quiet(t, other)
}

func TestLateJoinerGetsLast50OldestFirst(t *testing.T) {
	rt := durabletest.New(t)
	s := start(t, rt)
	a := wstest.MustDial(t, s.url+"/chat/history")
	watcher := wstest.MustDial(t, s.url+"/chat/history")
	for i := 1; i <= 60; i++ {
		a.SendText(fmt.Sprintf("m%d", i))
	}
	for i := 1; i <= 60; i++ { // all stored before the late joiner comes
		if got := read(t, watcher); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("watcher got %q", got)
		}
	}
	late := wstest.MustDial(t, s.url+"/chat/history")
	for i := 11; i <= 60; i++ {
		if got := read(t, late); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("history %d: got %q", i, got)
		}
	}
	quiet(t, late)
	// The history survives a restart.
	s.srv.Close()
	rt = durabletest.Restart(t, rt)
	s = start(t, rt)
	again := wstest.MustDial(t, s.url+"/chat/history")
	if got := read(t, again); got != "m11" {
		t.Fatalf("after restart the history starts with %q", got)
	}
}

func TestMessageLimits(t *testing.T) {
	s := start(t, durabletest.New(t))
	a := wstest.MustDial(t, s.url+"/chat/limits")
	b := wstest.MustDial(t, s.url+"/chat/limits")
	exact := strings.Repeat("x", chat.MaxMessage)
	a.SendText(exact)
	if got := read(t, b); got != exact {
		t.Fatalf("a %d-byte message arrived as %d bytes", len(exact), len(got))
	}
	a.SendText(exact + "y")
	if code, _, err := a.ExpectClose(10 * time.Second); err != nil || code != 1009 {
		t.Fatalf("oversize: close %d %v", code, err)
	}
	c := wstest.MustDial(t, s.url+"/chat/limits")
	read(t, c) // the 65,536-byte message from the history
	c.SendBinary([]byte("bin"))
	if code, _, err := c.ExpectClose(10 * time.Second); err != nil || code != 1003 {
		t.Fatalf("binary: close %d %v", code, err)
	}
	// b is unaffected, and got neither.
	d := wstest.MustDial(t, s.url+"/chat/limits")
	read(t, d)
	d.SendText("still here")
	if got := read(t, b); got != "still here" {
		t.Fatalf("b got %q", got)
	}
}

func TestRoomHibernatesAndWakes(t *testing.T) {
	rt := durabletest.New(t, durable.Config{HibernateAfter: 50 * time.Millisecond})
	s := start(t, rt)
	var cls []*wstest.Client
	for range 3 {
		cls = append(cls, wstest.MustDial(t, s.url+"/chat/sleepy"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for st := rt.Stats(); st.Live != 0 || st.HibernatedWebSockets != 3; st = rt.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the room did not hibernate: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cls[0].SendText("wake up")
	for _, cl := range cls[1:] {
		if got := read(t, cl); got != "wake up" {
			t.Fatalf("got %q", got)
		}
	}
}

func TestBadRequests(t *testing.T) {
	s := start(t, durabletest.New(t))
	for _, tc := range []struct {
		method string
		status int
	}{{"GET", 400}, {"POST", 405}, {"DELETE", 405}} {
		req, _ := http.NewRequest(tc.method, s.srv.URL+"/chat/r", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error string }
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != tc.status || err != nil || body.Error == "" {
			t.Fatalf("%s: %d %v %+v", tc.method, res.StatusCode, err, body)
		}
	}
	// A half-formed handshake is refused by the object, as JSON.
	req, _ := http.NewRequest("GET", s.srv.URL+"/chat/r", nil)
	req.Header.Set("Upgrade", "websocket")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(body.Error, "Connection") {
		t.Fatalf("half handshake: %d %+v", res.StatusCode, body)
	}
}
