package seats_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/examples/seats"
	"github.com/durable-go/durable/internal/wstest"
)

func start(t *testing.T) *httptest.Server {
	t.Helper()
	rt := durabletest.New(t)
	mux := http.NewServeMux()
	seats.Mount(mux, seats.Define(rt))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func book(t *testing.T, srv *httptest.Server, flight, body string) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(srv.URL+"/seats/"+flight+"/book", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Errorf("body of %d: %v", res.StatusCode, err)
	}
	return res.StatusCode, out
}

func seatMap(t *testing.T, srv *httptest.Server, flight string) map[string]string {
	t.Helper()
	res, err := http.Get(srv.URL + "/seats/" + flight)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Seats map[string]string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
		t.Fatalf("map: %d %v", res.StatusCode, err)
	}
	return out.Seats
}

func TestMapAndBooking(t *testing.T) {
	srv := start(t)
	m := seatMap(t, srv, "LH123")
	if len(m) != 120 || m["1A"] != "" || m["20F"] != "" {
		t.Fatalf("map has %d seats: %v", len(m), m)
	}
	if st, body := book(t, srv, "LH123", `{"seat":"12A","passenger":"alice"}`); st != 200 || body["seat"] != "12A" || body["passenger"] != "alice" {
		t.Fatalf("book: %d %v", st, body)
	}
	if st, body := book(t, srv, "LH123", `{"seat":"12A","passenger":"bob"}`); st != 409 || body["error"] == nil {
		t.Fatalf("taken: %d %v", st, body)
	}
	if st, _ := book(t, srv, "LH123", `{"seat":"12B","passenger":"alice"}`); st != 200 {
		t.Fatalf("a second seat for alice: %d", st)
	}
	m = seatMap(t, srv, "LH123")
	if m["12A"] != "alice" || m["12B"] != "alice" || m["12C"] != "" {
		t.Fatalf("map after booking: 12A=%q 12B=%q", m["12A"], m["12B"])
	}
	if m := seatMap(t, srv, "OTHER"); m["12A"] != "" {
		t.Fatal("flights share seats")
	}
}

func TestBadBookings(t *testing.T) {
	srv := start(t)
	for _, body := range []string{
		`{"seat":"21A","passenger":"x"}`, `{"seat":"0A","passenger":"x"}`, `{"seat":"12G","passenger":"x"}`,
		`{"seat":"012A","passenger":"x"}`, `{"seat":"","passenger":"x"}`, `{"seat":"12a","passenger":"x"}`,
		`{"seat":"12A","passenger":""}`, `{"seat":"12A","passenger":"  "}`, `{"seat":"12A"}`,
		`{"seat":`, `not json`, ``, `{"seat":"12A","passenger":"x"} trailing`, `[1,2]`,
	} {
		if st, out := book(t, srv, "F1", body); st != 400 || out["error"] == nil {
			t.Errorf("%s: %d %v", body, st, out)
		}
	}
	big := `{"seat":"12A","passenger":"` + strings.Repeat("x", 1<<20) + `"}`
	if st, out := book(t, srv, "F1", big); st != 413 || out["error"] == nil {
		t.Errorf("oversize: %d %v", st, out)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/seats/F1/book"}, {"POST", "/seats/F1"}, {"POST", "/seats/F1/ws"}, {"PUT", "/seats/F1/ws"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(nil))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 405 {
			t.Errorf("%s %s: %d", tc.method, tc.path, res.StatusCode)
		}
	}
	res, err := http.Get(srv.URL + "/seats/F1/ws")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 400 {
		t.Errorf("plain GET of the WebSocket route: %d", res.StatusCode)
	}
	if m := seatMap(t, srv, "F1"); m["12A"] != "" {
		t.Fatal("a bad request booked a seat")
	}
}

func TestConcurrentBookingsOfOneSeat(t *testing.T) {
	srv := start(t)
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, _ := book(t, srv, "RACE", `{"seat":"7C","passenger":"p`+string(rune('a'+i))+`"}`)
			codes <- st
		}()
	}
	wg.Wait()
	close(codes)
	ok, conflict := 0, 0
	for c := range codes {
		switch c {
		case 200:
			ok++
		case 409:
			conflict++
		}
	}
	if ok != 1 || conflict != 19 {
		t.Fatalf("%d bookings succeeded and %d conflicted, want 1 and 19", ok, conflict)
	}
}

func TestSubscribersGetBookings(t *testing.T) {
	srv := start(t)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/seats/PUSH/ws"
	a := wstest.MustDial(t, url)
	b := wstest.MustDial(t, url)
	if st, _ := book(t, srv, "PUSH", `{"seat":"1A","passenger":"alice"}`); st != 200 {
		t.Fatal(st)
	}
	book(t, srv, "PUSH", `{"seat":"1A","passenger":"bob"}`) // 409: not pushed
	book(t, srv, "PUSH", `{"seat":"2B","passenger":"bob"}`)
	for _, cl := range []*wstest.Client{a, b} {
		for _, want := range []string{`{"seat":"1A","passenger":"alice"}`, `{"seat":"2B","passenger":"bob"}`} {
			m, err := cl.ReadTimeout(10 * time.Second)
			if err != nil || string(m.Data) != want {
				t.Fatalf("push: %q %v, want %s", m.Data, err, want)
			}
		}
	}
}
