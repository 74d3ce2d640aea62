package counter_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/examples/counter"
)

func TestCounter_RPC(t *testing.T) {
	rt := durabletest.New(t)
	ns := counter.Define(rt)
	ctx := context.Background()
	stub := ns.GetByName("visits")
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				if _, err := durable.Call(ctx, stub, (*counter.Counter).Increment, int64(1)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if v, err := durable.Call0(ctx, stub, (*counter.Counter).Get); err != nil || v != 100 {
		t.Fatalf("Get = %d %v, want 100", v, err)
	}
	// The value survives a restart.
	rt = durabletest.Restart(t, rt)
	ns = counter.Define(rt)
	if v, _ := durable.Call0(ctx, ns.GetByName("visits"), (*counter.Counter).Get); v != 100 {
		t.Fatalf("after restart = %d, want 100", v)
	}
}

func TestCounter_HTTP(t *testing.T) {
	rt := durabletest.New(t)
	mux := http.NewServeMux()
	counter.Mount(mux, counter.Define(rt))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}
	if code, body := call("GET", "/counter/a"); code != 200 || body["value"] != 0.0 {
		t.Fatalf("GET new counter = %d %v", code, body)
	}
	for want := 1.0; want <= 3; want++ {
		if code, body := call("POST", "/counter/a/increment"); code != 200 || body["value"] != want {
			t.Fatalf("increment = %d %v, want %v", code, body, want)
		}
	}
	if code, body := call("GET", "/counter/a"); code != 200 || body["value"] != 3.0 {
		t.Fatalf("GET = %d %v", code, body)
	}
	if code, body := call("GET", "/counter/a/increment"); code != 405 || body["error"] == nil {
		t.Fatalf("GET on increment = %d %v, want 405 with an error", code, body)
	}
	if code, body := call("DELETE", "/counter/a"); code != 405 || body["error"] == nil {
		t.Fatalf("DELETE = %d %v, want 405 with an error", code, body)
	}
}
