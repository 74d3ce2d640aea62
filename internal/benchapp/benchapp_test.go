package benchapp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/internal/benchapp"
	"github.com/durable-go/durable/internal/wstest"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	rt := durabletest.New(t, durable.Config{})
	srv := httptest.NewServer(benchapp.Handler(benchapp.Define(rt)))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request and returns the status and body.
func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func expect(t *testing.T, method, url, body string, status int, want string) {
	t.Helper()
	gotStatus, got := do(t, method, url, body)
	if gotStatus != status || got != want {
		t.Errorf("%s %s = %d %q, want %d %q", method, url, gotStatus, got, status, want)
	}
}

func TestRoutesAnswerAsTheWorker(t *testing.T) {
	srv := serve(t)
	u := srv.URL
	expect(t, "GET", u+"/health", "", 200, "ok")
	expect(t, "GET", u+"/counter/a", "", 200, "0")
	for _, want := range []string{"1", "2", "3"} {
		expect(t, "POST", u+"/counter/a/inc", "", 200, want)
	}
	expect(t, "GET", u+"/counter/a", "", 200, "3")
	expect(t, "GET", u+"/counter/b", "", 200, "0")
	expect(t, "POST", u+"/kv/a/inc", "", 200, "1")
	expect(t, "POST", u+"/kv/a/inc", "", 200, "2")
	expect(t, "GET", u+"/kv/a/n", "", 200, "2")
	expect(t, "PUT", u+"/kv/a/greeting", "hello", 200, "stored")
	expect(t, "GET", u+"/kv/a/greeting", "", 200, "hello")
	expect(t, "GET", u+"/kv/a/missing", "", 404, "not found")
	expect(t, "GET", u+"/kv/a", "", 404, "not found")
	expect(t, "GET", u+"/room/r/count", "", 200, "0")
	expect(t, "GET", u+"/room/r/ws", "", 426, "expected websocket")
	for _, p := range []string{"/", "/counter", "/nope/x", "/counter/a/dec"} {
		expect(t, "POST", u+p, "", 404, "not found")
	}
	expect(t, "POST", u+"/alarm/p/set?ms=abc", "", 400, "ms must be a number of milliseconds from 0 to one year")
}

func TestCounterSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	for round, want := range []string{"1", "2"} {
		rt, err := durable.Open(durable.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(benchapp.Handler(benchapp.Define(rt)))
		expect(t, "POST", srv.URL+"/counter/x/inc", "", 200, want)
		srv.Close()
		if err := rt.Close(t.Context()); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
}

func TestRoomEchoAndBroadcast(t *testing.T) {
	srv := serve(t)
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")
	echo := wstest.MustDial(t, ws+"/room/r/ws?mode=echo")
	var bc []*wstest.Client
	for range 3 {
		bc = append(bc, wstest.MustDial(t, ws+"/room/r/ws?mode=broadcast"))
	}
	expect(t, "GET", srv.URL+"/room/r/count", "", 200, "4")

	echo.SendText("hi")
	if got, err := echo.ReadText(); err != nil || got != "hi" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	bc[0].SendBinary([]byte{1, 2, 3})
	for i, c := range bc { // the sender included, as the worker does
		m, err := c.ReadTimeout(10 * time.Second)
		if err != nil || !m.Binary || string(m.Data) != "\x01\x02\x03" {
			t.Fatalf("broadcast member %d got %+v, %v", i, m, err)
		}
	}
	if m, err := echo.ReadTimeout(200 * time.Millisecond); err == nil {
		t.Fatalf("the echo socket got the broadcast %q", m.Data)
	}
}

func TestAlarmProbeRecordsLateness(t *testing.T) {
	srv := serve(t)
	status, body := do(t, "POST", srv.URL+"/alarm/p/set?ms=20", "")
	var armed benchapp.Armed
	if err := json.Unmarshal([]byte(body), &armed); status != 200 || err != nil || armed.ScheduledFor != armed.SetAt+20 {
		t.Fatalf("set = %d %q (%v)", status, body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := do(t, "GET", srv.URL+"/alarm/p", "")
		var rep benchapp.ProbeReport
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("report %q: %v", body, err)
		}
		if rep.Fires > 0 {
			if rep.Fires != 1 || rep.LateByMs == nil || *rep.LateByMs < 0 || rep.PendingAlarm != nil {
				t.Fatalf("report after firing: %s", body)
			}
			break
		}
		if rep.PendingAlarm == nil || *rep.PendingAlarm != armed.ScheduledFor {
			t.Fatalf("report before firing: %s", body)
		}
		if time.Now().After(deadline) {
			t.Fatal("the alarm did not fire within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	expect(t, "GET", srv.URL+"/alarm/unset", "", 200,
		`{"armed":false,"firedAt":null,"fires":0,"lateByMs":null,"pendingAlarm":null}`+"\n")
}
