package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/wstest"
)

// ws opens a WebSocket on the server.
func (s *server) ws(path string) *wstest.Client {
	s.t.Helper()
	return wstest.MustDial(s.t, "ws"+strings.TrimPrefix(s.base, "http")+path)
}

// stats reads /_durable/stats.
func (s *server) stats() map[string]int64 {
	s.t.Helper()
	r := s.do(http.MethodGet, "/_durable/stats")
	var m map[string]int64
	if err := json.Unmarshal(r.body, &m); err != nil || r.status != 200 {
		s.t.Fatalf("stats: %d %s %v", r.status, r.body, err)
	}
	return m
}

func readMsg(t *testing.T, cl *wstest.Client) string {
	t.Helper()
	m, err := cl.ReadTimeout(requestTimeout)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(m.Data)
}

func silent(t *testing.T, cl *wstest.Client, who string) {
	t.Helper()
	if m, err := cl.ReadTimeout(200 * time.Millisecond); err == nil {
		t.Errorf("%s got %q; want nothing", who, m.Data)
	}
}

// TestServe_Chat checks the chat room on the built binary: broadcast to
// the others and not the sender, history for late joiners, the 1009 and
// 1003 closes that leave other members alone, the HTTP errors of the
// route, and hibernation: the room is evicted while three sockets stay
// open (seen in /_durable/stats), then a message wakes it and reaches the
// others.
func TestServe_Chat(t *testing.T) {
	s := startServer(t, t.TempDir(), "--hibernate-after", "300ms")
	a, b, c := s.ws("/chat/r1"), s.ws("/chat/r1"), s.ws("/chat/r1")
	a.SendText("hello")
	for _, cl := range []*wstest.Client{b, c} {
		if got := readMsg(t, cl); got != "hello" {
			t.Fatalf("broadcast: %q", got)
		}
	}
	silent(t, a, "the sender")

	for i := 2; i <= 55; i++ {
		b.SendText(fmt.Sprintf("m%d", i))
	}
	for i := 2; i <= 55; i++ {
		if got := readMsg(t, a); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("a got %q", got)
		}
	}
	late := s.ws("/chat/r1")
	for i := 6; i <= 55; i++ { // hello, m2..m55: the last 50 are m6..m55
		if got := readMsg(t, late); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("history: got %q, want m%d", got, i)
		}
	}
	silent(t, late, "the late joiner after its history")

	exact := strings.Repeat("é", 32768) // 65,536 bytes
	late.SendText(exact)
	if got := readMsg(t, a); got != exact {
		t.Fatalf("a 65,536-byte message arrived as %d bytes", len(got))
	}
	late.SendText(exact + "x")
	if code, _, err := late.ExpectClose(requestTimeout); err != nil || code != 1009 {
		t.Fatalf("a 65,537-byte message: close %d %v; want 1009", code, err)
	}
	c.SendBinary([]byte{1, 2, 3})
	if code, _, err := c.ExpectClose(requestTimeout); err != nil || code != 1003 {
		t.Fatalf("a binary message: close %d %v; want 1003", code, err)
	}
	b.SendText("after the closes")
	if got := readMsg(t, a); got != "after the closes" {
		t.Fatalf("a got %q", got)
	}

	for _, tc := range []struct {
		method string
		status int
	}{{http.MethodPost, 405}, {http.MethodGet, 400}, {http.MethodPut, 405}} {
		r := s.do(tc.method, "/chat/r1")
		if r.status != tc.status {
			t.Errorf("%s /chat/r1: %d; want %d", tc.method, r.status, tc.status)
		}
		checkErrorBody(t, tc.method+" /chat/r1", r)
	}

	// Three members in a quiet room: it hibernates, the sockets stay.
	// (Room r1, left without members, stays live for the idle timeout.)
	h1, h2, h3 := s.ws("/chat/quiet"), s.ws("/chat/quiet"), s.ws("/chat/quiet")
	a.Drop()
	b.Drop()
	deadline := time.Now().Add(requestTimeout)
	var st map[string]int64
	for {
		st = s.stats()
		if st["live"] == 1 && st["websockets"] == 3 && st["hibernated_websockets"] == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rooms did not hibernate within %v: stats %v", requestTimeout, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h2.SendText("wake up")
	for _, cl := range []*wstest.Client{h1, h3} {
		if got := readMsg(t, cl); got != "wake up" {
			t.Fatalf("after hibernation: %q", got)
		}
	}
	if st := s.stats(); st["live"] != 2 || st["hibernated_websockets"] != 0 {
		t.Errorf("after the wake-up: stats %v; want live 2, hibernated 0", st)
	}
	s.stop()
}

// TestServe_RateLimit checks the token bucket's statuses and bodies.
func TestServe_RateLimit(t *testing.T) {
	s := startServer(t, t.TempDir())
	// Requests until the first 429: the first leaves 9 tokens, each
	// leaves at most as many as the one before (the bucket refills 1/s,
	// so a slow machine may be allowed an 11th).
	var r response
	prev := 10
	allowed := 0
	for range 15 {
		r = s.do(http.MethodPost, "/ratelimit/client-1")
		if r.status != 200 {
			break
		}
		var body struct{ Remaining *int }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Remaining == nil || *body.Remaining > prev || (allowed == 0 && *body.Remaining != 9) {
			t.Fatalf("request %d: %s; want {\"remaining\": N}, 9 first, never growing", allowed+1, r.body)
		}
		prev = *body.Remaining
		allowed++
	}
	if r.status != 429 || allowed < 10 || allowed > 11 {
		t.Fatalf("%d requests allowed, then %d %s; want 10 (or 11 on a slow machine) then 429", allowed, r.status, r.body)
	}
	checkErrorBody(t, "429", r)
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q; want whole seconds ≥ 1", r.header.Get("Retry-After"))
	}
	if r := s.do(http.MethodGet, "/ratelimit/client-1"); r.status != 405 {
		t.Errorf("GET /ratelimit: %d; want 405", r.status)
	}
	s.stop()
}

// TestServe_Seats checks the seat map, 20 concurrent bookings of one seat
// (exactly one 200), pushes to subscribers, bad input, and that bookings
// and chat history survive a restart; SIGTERM closes sockets with 1001.
func TestServe_Seats(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	sub := s.ws("/seats/LH1/ws")
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.tryDoBody(http.MethodPost, "/seats/LH1/book", fmt.Sprintf(`{"seat":"12A","passenger":"p%d"}`, i))
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.status
			if r.status != 200 {
				checkErrorBody(t, "conflict", r)
			}
		}()
	}
	wg.Wait()
	winner := -1
	for i, st := range statuses {
		switch {
		case st == 200 && winner < 0:
			winner = i
		case st == 200:
			t.Fatalf("two bookings of 12A succeeded: %v", statuses)
		case st != 409:
			t.Fatalf("statuses %v; want one 200 and 19 409", statuses)
		}
	}
	if winner < 0 {
		t.Fatalf("no booking succeeded: %v", statuses)
	}
	want := fmt.Sprintf(`{"seat":"12A","passenger":"p%d"}`, winner)
	if got := readMsg(t, sub); got != want {
		t.Fatalf("push %s; want %s", got, want)
	}
	silent(t, sub, "the subscriber after one booking")

	for _, body := range []string{`{"seat":"21A","passenger":"x"}`, `{"seat":"1A","passenger":""}`, `{"seat":`} {
		r, err := s.tryDoBody(http.MethodPost, "/seats/LH1/book", body)
		if err != nil || r.status != 400 {
			t.Errorf("%s: %d %v; want 400", body, r.status, err)
		}
		checkErrorBody(t, body, r)
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{{"POST", "/seats/LH1/ws", 405}, {"GET", "/seats/LH1/ws", 400}, {"GET", "/seats/LH1/nope", 404}, {"DELETE", "/seats/LH1", 405}} {
		r := s.do(c.method, c.path)
		if r.status != c.status {
			t.Errorf("%s %s: %d; want %d", c.method, c.path, r.status, c.status)
		}
		checkErrorBody(t, c.method+" "+c.path, r)
	}

	chat := s.ws("/chat/keep")
	chat.SendText("kept across restarts")
	time.Sleep(100 * time.Millisecond) // no ack for a chat message: let it be stored

	// SIGTERM: both sockets get 1001, the process exits 0.
	closed := make(chan string, 2)
	for _, cl := range []*wstest.Client{sub, chat} {
		go func() {
			code, _, err := cl.ExpectClose(exitTimeout)
			closed <- fmt.Sprint(code, err)
		}()
	}
	s.stop()
	for range 2 {
		if got := <-closed; got != "1001 <nil>" {
			t.Errorf("on SIGTERM a socket got %s; want 1001", got)
		}
	}

	s = startServer(t, dir)
	r := s.do(http.MethodGet, "/seats/LH1")
	var m struct{ Seats map[string]string }
	if err := json.Unmarshal(r.body, &m); err != nil || len(m.Seats) != 120 || m.Seats["12A"] != fmt.Sprintf("p%d", winner) {
		t.Fatalf("after a restart: %d seats, 12A = %q (%v)", len(m.Seats), m.Seats["12A"], err)
	}
	if got := readMsg(t, s.ws("/chat/keep")); got != "kept across restarts" {
		t.Fatalf("chat history after a restart: %q", got)
	}
	s.stop()
}

// TestServe_SigtermDrainsInFlight sends SIGTERM while a booking request is
// half sent and others run: the half-sent request still completes with
// 200 and is durable, every other request gets a status (200 or 503) or
// is refused at connect, and the process exits 0.
func TestServe_SigtermDrainsInFlight(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	// A request whose body is only half sent when the signal arrives.
	addr := strings.TrimPrefix(s.base, "http://")
	nc, err := net.DialTimeout("tcp", addr, requestTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := `{"seat":"3C","passenger":"slow"}`
	fmt.Fprintf(nc, "POST /seats/drain/book HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:10])

	// Load: bookings of distinct seats on other flights, no keep-alive.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: requestTimeout}
	type result struct {
		seat   string
		status int
		err    error
	}
	results := make(chan result, 10000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 120; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seat := fmt.Sprintf("%d%c", i/6+1, "ABCDEF"[i%6])
				res, err := client.Post(fmt.Sprintf("%s/seats/load%d/book", s.base, w), "application/json",
					strings.NewReader(fmt.Sprintf(`{"seat":%q,"passenger":"w%d"}`, seat, w)))
				if err != nil {
					results <- result{seat: fmt.Sprint(w, "/", seat), err: err}
					return // the server is going away
				}
				res.Body.Close()
				results <- result{seat: fmt.Sprint(w, "/", seat), status: res.StatusCode}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	// The rest of the half-sent request: it was in flight, so it is served.
	if _, err := nc.Write([]byte(body[10:])); err != nil {
		t.Fatalf("the in-flight request's connection was closed under it: %v", err)
	}
	nc.SetReadDeadline(time.Now().Add(requestTimeout))
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no response: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("the in-flight request: %d; want 200", res.StatusCode)
	}
	close(stop)
	wg.Wait()
	close(results)
	select {
	case <-s.done:
	case <-time.After(exitTimeout):
		t.Fatalf("no exit within %v of SIGTERM", exitTimeout)
	}
	if s.waitErr != nil {
		t.Fatalf("exit after SIGTERM: %v; want 0", s.waitErr)
	}
	acked := map[string]bool{}
	var n200, n503, nErr int
	for r := range results {
		switch {
		case r.err != nil:
			nErr++
			if !refused(r.err) {
				t.Errorf("%s: %v; want a status or a refused connection", r.seat, r.err)
			}
		case r.status == 200:
			n200++
			acked[r.seat] = true
		case r.status == 503:
			n503++
		default:
			t.Errorf("%s: status %d; want 200 or 503", r.seat, r.status)
		}
	}
	t.Logf("during the drain: %d bookings acknowledged, %d refused with 503, %d connections refused", n200, n503, nErr)

	s = startServer(t, dir)
	check := func(flight, seat, passenger string) {
		r := s.do(http.MethodGet, "/seats/"+flight)
		var m struct{ Seats map[string]string }
		json.Unmarshal(r.body, &m)
		if m.Seats[seat] != passenger {
			t.Errorf("after a restart %s %s = %q; want %q (acknowledged)", flight, seat, m.Seats[seat], passenger)
		}
	}
	check("drain", "3C", "slow")
	for k := range acked {
		w, seat, _ := strings.Cut(k, "/")
		check("load"+w, seat, "w"+w)
	}
	s.stop()
}

// refused reports an error of a request the server never took: the
// connection was refused or reset before any response.
func refused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "connection reset") || strings.Contains(s, "EOF")
}

// TestServe_ChatKillKeepsWhatWasDelivered kills the server with SIGKILL
// while a member sends messages: every message another member received
// must be in the room's history after a restart (a message leaves only
// once it is durable), in the order sent.
func TestServe_ChatKillKeepsWhatWasDelivered(t *testing.T) {
	dir := t.TempDir()
	cycles := 3
	if testing.Short() {
		cycles = 1
	}
	s := startServer(t, dir)
	for cycle := range cycles {
		room := fmt.Sprintf("/chat/kill%d", cycle)
		recv := s.ws(room)
		send := s.ws(room)
		got := make(chan []string, 1)
		go func() {
			var seen []string
			for {
				m, err := recv.ReadTimeout(requestTimeout)
				if err != nil {
					got <- seen
					return
				}
				seen = append(seen, string(m.Data))
			}
		}()
		go func() {
			for i := 1; i <= 45; i++ {
				if send.SendText(fmt.Sprintf("m%d", i)) != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(10+cycle*7) * time.Millisecond)
		s.kill()
		seen := <-got
		s = startServer(t, dir)
		joiner := s.ws(room)
		var history []string
		for {
			m, err := joiner.ReadTimeout(300 * time.Millisecond)
			if err != nil {
				break
			}
			history = append(history, string(m.Data))
		}
		for i, h := range history {
			if h != fmt.Sprintf("m%d", i+1) {
				t.Fatalf("cycle %d: history %v is not m1..mN in order", cycle, history)
			}
		}
		for i, m := range seen {
			if m != fmt.Sprintf("m%d", i+1) {
				t.Fatalf("cycle %d: the member received %v, not m1..mN in order", cycle, seen)
			}
		}
		if len(seen) > len(history) {
			t.Fatalf("cycle %d: a member received %d messages but only %d are stored after SIGKILL: received %v, stored %v",
				cycle, len(seen), len(history), seen, history)
		}
		t.Logf("cycle %d: %d received before SIGKILL, %d stored", cycle, len(seen), len(history))
	}
	s.stop()
}
