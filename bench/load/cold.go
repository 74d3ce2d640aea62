package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// rssSettle is how long the cold run waits after its last request before it
// samples the server's memory, so that work in flight can finish.
const rssSettle = 500 * time.Millisecond

// runCold is the cold subcommand: each of n objects that do not exist yet
// gets one increment, c at a time, which measures activation.
func runCold(args []string) int {
	lf := newLoadFlags("cold")
	n := lf.fs.Int("n", 10000, "distinct objects to activate")
	conns := lf.fs.Int("c", 16, "concurrent connections")
	dur := lf.fs.Duration("d", 20*time.Second, "stop issuing requests after this long")
	prefix := lf.fs.String("prefix", "cold", "object names are <prefix>-<i>; use a new prefix per run")
	pid := lf.fs.Int("pid", 0, "server process: report its memory per object (optional)")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *n < 1 || *conns < 1 || *dur <= 0 {
		return flagExit(errors.New("cold: -n and -c must be ≥ 1 and -d positive"))
	}
	c := coldConfig{base: lf.base, n: *n, conns: *conns, dur: *dur, prefix: *prefix, pid: *pid}
	return runLoad(lf, *dur+20*time.Second, func(ctx context.Context, m *metrics) {
		cold(ctx, m, c)
	})
}

type coldConfig struct {
	base   string
	n      int
	conns  int
	dur    time.Duration
	prefix string
	pid    int // 0: do not measure memory
}

func cold(ctx context.Context, m *metrics, c coldConfig) {
	cl := newHTTPClient(c.conns)
	defer cl.CloseIdleConnections()
	m.set("requested", float64(c.n))
	m.set("conns", float64(c.conns))
	var before int64
	haveBefore := false
	if c.pid > 0 {
		before, haveBefore = sampleRSS(m, c.pid, "rss_before_kib")
	}

	cpu0 := cpuSeconds()
	start := time.Now()
	stop := start.Add(c.dur)
	var next atomic.Int64
	var notFirst atomic.Int64 // objects whose increment did not return 1
	samples := make([][]time.Duration, c.conns)
	var wg sync.WaitGroup
	for w := range samples {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				i := next.Add(1) - 1
				if i >= int64(c.n) {
					return
				}
				url := fmt.Sprintf("%s/counter/%s-%d/inc", c.base, c.prefix, i)
				t0 := time.Now()
				body, err := call(ctx, cl, http.MethodPost, url)
				if err != nil {
					if ctx.Err() != nil {
						return // the hard deadline cut the request off: not the server's error
					}
					m.fail(err)
					sleepCtx(ctx, errorPause)
					continue
				}
				samples[w] = append(samples[w], time.Since(t0))
				if string(body) != "1" {
					notFirst.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	objects := len(all)
	m.set("objects", float64(objects))
	m.set("objects_per_s", round2(float64(objects)/elapsed.Seconds()))
	m.set("elapsed_s", round2(elapsed.Seconds()))
	m.set("not_first", float64(notFirst.Load()))
	m.set("client_cpu_s", round2(cpuSeconds()-cpu0))
	setLatencies(m, all)

	if c.pid <= 0 || !sleepCtx(ctx, rssSettle) {
		return
	}
	after, haveAfter := sampleRSS(m, c.pid, "rss_after_kib")
	if haveBefore && haveAfter && objects > 0 {
		m.set("kib_per_object", round2(float64(after-before)/float64(objects)))
	}
}
