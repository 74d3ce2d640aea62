package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestServe_Routes checks the counter routes and the status codes of
// DESIGN.md §5 on the built binary, /healthz and /_durable/stats, then that
// SIGTERM exits 0 within 10 s and a server restarted on the same directory
// still has the values.
func TestServe_Routes(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)

	// A counter that was never incremented reads 0.
	if v := s.get("never"); v != 0 {
		t.Errorf("GET /counter/never = %d; want 0", v)
	}

	// Increments return the new value, one by one.
	for want := int64(1); want <= 3; want++ {
		if v := s.increment("alpha"); v != want {
			t.Errorf("POST /counter/alpha/increment = %d; want %d", v, want)
		}
	}
	if v := s.increment("beta"); v != 1 {
		t.Errorf("POST /counter/beta/increment = %d; want 1 (counters are independent)", v)
	}
	wantValues := map[string]int64{"alpha": 3, "beta": 1, "never": 0}
	checkValues := func(s *server, when string) {
		t.Helper()
		for name, want := range wantValues {
			if v := s.get(name); v != want {
				t.Errorf("%s: GET /counter/%s = %d; want %d", when, name, v, want)
			}
		}
	}
	checkValues(s, "after the increments")

	// Odd but valid names: escaped characters reach the object as its
	// name, and each is a counter of its own.
	for _, name := range []string{"with%20space", "%C3%BCnic%C3%B6de", "a%2Fb", strings.Repeat("x", 1000)} {
		if v := s.increment(name); v != 1 {
			t.Errorf("POST /counter/%.40s/increment = %d; want 1", name, v)
		}
		if v := s.get(name); v != 1 {
			t.Errorf("GET /counter/%.40s = %d; want 1", name, v)
		}
	}

	// A wrong method is 405 with a JSON error body, and changes nothing.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/counter/alpha/increment"},
		{http.MethodPut, "/counter/alpha/increment"},
		{http.MethodDelete, "/counter/alpha/increment"},
		{http.MethodPost, "/counter/alpha"},
		{http.MethodPut, "/counter/alpha"},
		{http.MethodDelete, "/counter/alpha"},
		{http.MethodPost, "/healthz"},
		{http.MethodPut, "/healthz"},
		{http.MethodDelete, "/healthz"},
		{http.MethodPost, "/_durable/stats"},
	} {
		r := s.do(c.method, c.path)
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d %s; want 405", c.method, c.path, r.status, r.body)
			continue
		}
		checkErrorBody(t, c.method+" "+c.path, r)
	}

	// An unknown route is 404 with a JSON error body.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/nope"},
		{http.MethodPost, "/nope"},
		{http.MethodGet, "/counter/"},
		{http.MethodGet, "/counter/alpha/decrement"},
		{http.MethodPost, "/counter/alpha/decrement"},
		{http.MethodPost, "/counter/alpha/increment/more"},
		{http.MethodGet, "/counter/alpha/increment/more"},
		{http.MethodGet, "/_durable/nope"},
		{http.MethodGet, "/healthz/more"},
	} {
		r := s.do(c.method, c.path)
		if r.status != http.StatusNotFound {
			t.Errorf("%s %s: %d %s; want 404", c.method, c.path, r.status, r.body)
			continue
		}
		checkErrorBody(t, c.method+" "+c.path, r)
	}
	checkValues(s, "after the refused requests")

	// /healthz: 200 for GET.
	if r := s.do(http.MethodGet, "/healthz"); r.status != http.StatusOK {
		t.Errorf("GET /healthz: %d %s; want 200", r.status, r.body)
	} else if !json.Valid(r.body) {
		t.Errorf("GET /healthz: body %q is not JSON", r.body)
	}

	// /metrics: the Prometheus text format, with the counter's calls in it.
	if r := s.do(http.MethodGet, "/metrics"); r.status != http.StatusOK {
		t.Errorf("GET /metrics: %d; want 200", r.status)
	} else if !regexp.MustCompile(`(?m)^durable_rpc_calls_total\{method="Increment",namespace="COUNTER"\} [1-9]`).Match(r.body) {
		t.Errorf("GET /metrics: no durable_rpc_calls_total of COUNTER's increments in:\n%s", tail(string(r.body), 3000))
	}

	// /_durable/stats: exactly the four counts, as non-negative integers.
	r := s.do(http.MethodGet, "/_durable/stats")
	if r.status != http.StatusOK {
		t.Fatalf("GET /_durable/stats: %d %s; want 200", r.status, r.body)
	}
	var stats map[string]json.Number
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&stats); err != nil {
		t.Fatalf("GET /_durable/stats: body %q is not a JSON object of numbers: %v", r.body, err)
	}
	wantKeys := []string{"hibernated_websockets", "live", "open_databases", "websockets"}
	var keys []string
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != strings.Join(wantKeys, ",") {
		t.Errorf("GET /_durable/stats: keys %v; want %v (body %s)", keys, wantKeys, r.body)
	}
	n := map[string]int64{}
	for k, v := range stats {
		i, err := v.Int64()
		if err != nil || i < 0 {
			t.Errorf("GET /_durable/stats: %s = %s; want a non-negative integer", k, v)
		}
		n[k] = i
	}
	// Counters were used just now and the idle timeout is 70 s: at least
	// one instance is live and its database open; no WebSockets exist.
	if n["live"] < 1 || n["open_databases"] < 1 {
		t.Errorf("GET /_durable/stats: %s; want live >= 1 and open_databases >= 1 right after increments", r.body)
	}
	if n["websockets"] != 0 || n["hibernated_websockets"] != 0 {
		t.Errorf("GET /_durable/stats: %s; want no websockets", r.body)
	}

	// SIGTERM: exit 0 within 10 s; a restart on the same dir has the values.
	s.stop()
	s2 := startServer(t, dir)
	checkValues(s2, "after SIGTERM and a restart")
	s2.stop()
}

// TestServe_DirLocked checks that a second server on a data directory that
// a running server holds is refused (it exits non-zero without listening)
// and that the first one keeps serving.
func TestServe_DirLocked(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if v := s.increment("c"); v != 1 {
		t.Fatalf("increment = %d; want 1", v)
	}
	second := launch(t, dir)
	err := second.waitListening()
	if err == nil {
		second.kill()
		t.Fatalf("a second durable serve on %s started listening while the first holds the directory", dir)
	}
	if !second.exited() {
		t.Fatalf("the second durable serve neither listened nor exited: %v", err)
	}
	if second.waitErr == nil {
		t.Errorf("the second durable serve exited 0 without serving; want a non-zero status")
	}
	t.Logf("second server refused: %v; stderr: %s", second.waitErr, strings.TrimSpace(second.stderr.String()))
	if v := s.increment("c"); v != 2 {
		t.Errorf("the first server after the refused second one: increment = %d; want 2", v)
	}
	s.stop()
}

// checkErrorBody requires a JSON object body {"error": "<non-empty>"}.
func checkErrorBody(t *testing.T, what string, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: %d with Content-Type %q; want application/json", what, r.status, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Errorf("%s: %d body %q is not a JSON object: %v", what, r.status, r.body, err)
		return
	}
	if msg, ok := body["error"].(string); !ok || msg == "" {
		t.Errorf("%s: %d body %s; want {\"error\": \"...\"}", what, r.status, r.body)
	}
}
