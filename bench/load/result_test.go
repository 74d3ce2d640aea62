package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func mustLoadFlags(tb testing.TB, name string, args ...string) *loadFlags {
	tb.Helper()
	lf := newLoadFlags(name)
	lf.fs.SetOutput(io.Discard)
	if err := lf.parse(args); err != nil {
		tb.Fatal(err)
	}
	return lf
}

func TestMeasure(t *testing.T) {
	lf := mustLoadFlags(t, "hot", "-server", "workerd", "-round", "3", "-scenario", "hot_counter_c64")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name           string
		budget         time.Duration
		body           func(ctx context.Context, m *metrics)
		wantIncomplete bool
		wantErrors     float64
		wantN          bool
	}{
		{"finishes in time", time.Minute, func(ctx context.Context, m *metrics) {
			m.set("n", 1)
		}, false, 0, true},
		{"stops at the deadline", 10 * time.Millisecond, func(ctx context.Context, m *metrics) {
			<-ctx.Done()
			m.set("n", 1)
		}, true, 0, true},
		{"never stops", 10 * time.Millisecond, func(ctx context.Context, m *metrics) {
			m.set("n", 1)
			<-release // ignores ctx; the watchdog gives up on it
		}, true, 0, true},
		{"panics", time.Minute, func(ctx context.Context, m *metrics) {
			var mm map[string]int
			mm["x"] = 1
		}, false, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := measure(lf, tt.budget, 20*time.Millisecond, tt.body)
			if r.Scenario != "hot_counter_c64" || r.Server != "workerd" || r.Round != 3 {
				t.Errorf("labels = %q %q %d", r.Scenario, r.Server, r.Round)
			}
			if _, err := time.Parse(time.RFC3339, r.Time); err != nil {
				t.Errorf("time %q: %v", r.Time, err)
			}
			if got := r.Metrics["incomplete"] == 1; got != tt.wantIncomplete {
				t.Errorf("incomplete = %v, want %v", got, tt.wantIncomplete)
			}
			if r.Metrics["errors"] != tt.wantErrors {
				t.Errorf("errors = %v, want %v", r.Metrics["errors"], tt.wantErrors)
			}
			if _, ok := r.Metrics["n"]; ok != tt.wantN {
				t.Errorf("n recorded = %v, want %v", ok, tt.wantN)
			}
		})
	}
}

func TestWriteResult(t *testing.T) {
	var b bytes.Buffer
	r := Result{Scenario: "cold", Server: "durable", Round: 2, Time: "2026-11-27T00:00:00Z",
		Metrics: map[string]float64{"objects_per_s": 1234.5, "errors": 0}}
	if err := writeResult(&b, r); err != nil {
		t.Fatal(err)
	}
	want := `{"scenario":"cold","server":"durable","round":2,"time":"2026-11-27T00:00:00Z","metrics":{"errors":0,"objects_per_s":1234.5}}` + "\n"
	if b.String() != want {
		t.Errorf("line = %s\nwant   %s", b.String(), want)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8787", true},
		{"http://localhost:8787", true},
		{"http://[::1]:8787", true},
		{"http://127.0.0.2:1", true},
		{"http://10.0.0.1:8787", false},
		{"http://example.com", false},
		{"https://127.0.0.1:8787", false},
		{"127.0.0.1:8787", false},
	}
	for _, tt := range tests {
		if err := checkLoopback(tt.url); (err == nil) != tt.ok {
			t.Errorf("checkLoopback(%q) = %v, want ok %v", tt.url, err, tt.ok)
		}
	}
}

func TestDispatch(t *testing.T) {
	var stderr bytes.Buffer
	if code := dispatch([]string{"nope"}, &stderr); code != 2 {
		t.Errorf("unknown subcommand: exit %d, want 2", code)
	}
	for _, c := range commands {
		if !strings.Contains(stderr.String(), "  "+c.name+" ") {
			t.Errorf("usage does not list %q", c.name)
		}
	}
	if code := dispatch(nil, io.Discard); code != 2 {
		t.Errorf("no subcommand: exit %d, want 2", code)
	}
}
