package ratelimiter_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/examples/ratelimiter"
)

// fakeNow is a settable clock.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func post(t *testing.T, url string) (int, string, map[string]any) {
	t.Helper()
	res, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("body: %v", err)
	}
	return res.StatusCode, res.Header.Get("Retry-After"), body
}

func TestBucket(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1_700_000_000, 0)}
	rt := durabletest.New(t)
	mux := http.NewServeMux()
	ratelimiter.Mount(mux, ratelimiter.Define(rt, clk.now))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + "/ratelimit/1.2.3.4"
	for want := 9; want >= 0; want-- {
		st, _, body := post(t, url)
		if st != 200 || body["remaining"] != float64(want) {
			t.Fatalf("request %d: %d %v", 10-want, st, body)
		}
	}
	st, ra, body := post(t, url)
	if st != 429 || ra != "1" || body["error"] == nil {
		t.Fatalf("11th: %d Retry-After %q %v", st, ra, body)
	}
	clk.add(300 * time.Millisecond) // 0.3 tokens: 0.7 s to wait, rounded up
	if st, ra, _ := post(t, url); st != 429 || ra != "1" {
		t.Fatalf("after 0.3 s: %d %q", st, ra)
	}
	clk.add(700 * time.Millisecond)
	if st, _, body := post(t, url); st != 200 || body["remaining"] != float64(0) {
		t.Fatalf("after 1 s: %d %v", st, body)
	}
	// Other keys have their own bucket.
	if st, _, body := post(t, srv.URL+"/ratelimit/other"); st != 200 || body["remaining"] != float64(9) {
		t.Fatalf("other key: %d %v", st, body)
	}
	// A full refill takes 10 s and does not overflow.
	clk.add(time.Hour)
	if st, _, body := post(t, url); st != 200 || body["remaining"] != float64(9) {
		t.Fatalf("after an hour: %d %v", st, body)
	}
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Fatalf("GET: %d", res.StatusCode)
	}
}
