package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// errorPause is how long a closed-loop worker waits after a failed request,
// so that a server that is down is not spun against.
const errorPause = 10 * time.Millisecond

// runHot is the hot subcommand: c workers, each on its own keep-alive
// connection, send requests to one path back to back for a fixed time.
func runHot(args []string) int {
	lf := newLoadFlags("hot")
	path := lf.fs.String("path", "/counter/hot/inc", "request path")
	method := lf.fs.String("method", http.MethodPost, "request method")
	conns := lf.fs.Int("c", 64, "concurrent connections (closed loop)")
	dur := lf.fs.Duration("d", 10*time.Second, "duration of the timed phase")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *conns < 1 || *dur <= 0 {
		return flagExit(errors.New("hot: -c must be ≥ 1 and -d positive"))
	}
	url := lf.base + *path
	return runLoad(lf, *dur+15*time.Second, func(ctx context.Context, m *metrics) {
		hot(ctx, m, *method, url, *conns, *dur)
	})
}

// hotWorker is the private tally of one closed-loop worker.
type hotWorker struct {
	samples []time.Duration
	maxAck  int64
}

func hot(ctx context.Context, m *metrics, method, url string, conns int, dur time.Duration) {
	cl := newHTTPClient(conns)
	defer cl.CloseIdleConnections()
	m.set("conns", float64(conns))
	if _, err := call(ctx, cl, method, url); err != nil {
		m.fail(fmt.Errorf("warm-up: %w", err))
	}

	cpu0 := cpuSeconds()
	start := time.Now()
	stop := start.Add(dur)
	workers := make([]hotWorker, conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				t0 := time.Now()
				body, err := call(ctx, cl, method, url)
				if err != nil {
					if ctx.Err() != nil {
						return // the hard deadline cut the request off: not the server's error
					}
					m.fail(err)
					sleepCtx(ctx, errorPause)
					continue
				}
				w.samples = append(w.samples, time.Since(t0))
				if v, err := strconv.ParseInt(string(body), 10, 64); err == nil {
					w.maxAck = max(w.maxAck, v)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	var maxAck int64
	for _, w := range workers {
		all = append(all, w.samples...)
		maxAck = max(maxAck, w.maxAck)
	}
	m.set("n", float64(len(all)))
	m.set("rps", round2(float64(len(all))/elapsed.Seconds()))
	m.set("elapsed_s", round2(elapsed.Seconds()))
	m.set("max_ack", float64(maxAck))
	m.set("client_cpu_s", round2(cpuSeconds()-cpu0))
	setLatencies(m, all)
}
