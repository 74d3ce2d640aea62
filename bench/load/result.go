package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Result is one measurement: one scenario against one server in one round.
// It is the line the load subcommands print and the report reads.
type Result struct {
	Scenario string             `json:"scenario"`
	Server   string             `json:"server"`
	Round    int                `json:"round"`
	Time     string             `json:"time"`
	Metrics  map[string]float64 `json:"metrics"`
}

// metrics collects the named numbers of one run. It is safe for concurrent
// use, so a watchdog can print what a stuck run has measured so far.
type metrics struct {
	mu     sync.Mutex
	vals   map[string]float64 // guarded by mu
	failed int                // errors passed to fail; guarded by mu
}

// loggedErrors is how many errors of one run are written to stderr; the
// rest are only counted.
const loggedErrors = 5

func newMetrics() *metrics {
	return &metrics{vals: map[string]float64{"errors": 0}}
}

// set records v under name; NaN and infinities are dropped because JSON
// cannot carry them.
func (m *metrics) set(name string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	m.mu.Lock()
	m.vals[name] = v
	m.mu.Unlock()
}

func (m *metrics) add(name string, v float64) {
	m.mu.Lock()
	m.vals[name] += v
	m.mu.Unlock()
}

// fail counts err in the "errors" metric and logs the first few.
func (m *metrics) fail(err error) {
	m.mu.Lock()
	m.vals["errors"]++
	m.failed++
	n := m.failed
	m.mu.Unlock()
	if n <= loggedErrors {
		logf("error: %v", err)
	} else if n == loggedErrors+1 {
		logf("more errors: counting, not logging")
	}
}

func (m *metrics) snapshot() map[string]float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.vals)
}

// loadFlags are the flags every load subcommand takes.
type loadFlags struct {
	fs       *flag.FlagSet
	base     string
	server   string
	scenario string
	round    int
	timeout  time.Duration
}

// newLoadFlags returns a flag set for subcommand name with the common flags
// registered; scenario defaults to name.
func newLoadFlags(name string) *loadFlags {
	lf := &loadFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	lf.fs.StringVar(&lf.base, "url", "http://127.0.0.1:8787", "base URL of the server (loopback only)")
	lf.fs.StringVar(&lf.server, "server", "durable", "server name recorded in the result")
	lf.fs.StringVar(&lf.scenario, "scenario", name, "scenario label recorded in the result")
	lf.fs.IntVar(&lf.round, "round", 1, "round number recorded in the result")
	lf.fs.DurationVar(&lf.timeout, "timeout", 0, "hard overall deadline (0: duration plus a generous margin)")
	return lf
}

// parse parses args and checks that the base URL is on the loopback interface.
func (lf *loadFlags) parse(args []string) error {
	if err := lf.fs.Parse(args); err != nil {
		return err
	}
	if lf.fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", lf.fs.Name(), lf.fs.Args())
	}
	lf.base = strings.TrimRight(lf.base, "/")
	return checkLoopback(lf.base)
}

// checkLoopback refuses any target that is not on this machine's loopback
// interface: the load client must never send traffic elsewhere.
func checkLoopback(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bad -url %q: %w", base, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("bad -url %q: want http://127.0.0.1:PORT", base)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing non-loopback -url %q", base)
	}
	return nil
}

// watchdogGrace is how long after its hard deadline a run may take to stop
// before the result is printed without waiting for it.
const watchdogGrace = 5 * time.Second

// runLoad runs body under a hard deadline (lf.timeout, or budget when no
// -timeout was given), prints the result line and returns the exit code.
func runLoad(lf *loadFlags, budget time.Duration, body func(ctx context.Context, m *metrics)) int {
	if lf.timeout > 0 {
		budget = lf.timeout
	}
	raiseFileLimit()
	r := measure(lf, budget, watchdogGrace, body)
	if err := writeResult(os.Stdout, r); err != nil {
		logf("%s: write result: %v", lf.fs.Name(), err)
		return 1
	}
	return 0
}

// measure runs body with a context that expires after budget and returns
// its result. A body that overruns the deadline still gets its result, with
// "incomplete": 1; one that has not returned grace later is abandoned and
// the result holds what it had recorded. A panic counts as an error.
func measure(lf *loadFlags, budget, grace time.Duration, body func(ctx context.Context, m *metrics)) Result {
	m := newMetrics()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				m.fail(fmt.Errorf("%s: internal error: %v", lf.fs.Name(), r))
			}
		}()
		body(ctx, m)
	}()
	t := time.NewTimer(budget + grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		logf("%s: still running %v after the %v deadline; printing what was measured", lf.fs.Name(), grace, budget)
	}
	if ctx.Err() != nil {
		m.set("incomplete", 1)
	}
	return Result{
		Scenario: lf.scenario,
		Server:   lf.server,
		Round:    lf.round,
		Time:     time.Now().UTC().Format(time.RFC3339),
		Metrics:  m.snapshot(),
	}
}

func writeResult(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// logf writes a diagnostic line to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "load: "+format+"\n", args...)
}

// ms converts d to milliseconds, rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}

// round2 rounds v to two decimals, enough for rates and ratios of counts.
func round2(v float64) float64 {
	return math.Round(v*100) / 100
}
