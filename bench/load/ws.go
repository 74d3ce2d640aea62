package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// runEcho is the ws subcommand: n sockets in one room in echo mode, each
// sending a message and waiting for its echo, back to back.
func runEcho(args []string) int {
	lf := newLoadFlags("ws")
	n := lf.fs.Int("n", 1000, "sockets")
	dur := lf.fs.Duration("d", 10*time.Second, "duration of the timed phase")
	room := lf.fs.String("room", "echo", "room name; use a new one per run")
	size := lf.fs.Int("size", 32, "message size in bytes")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *n < 1 || *dur <= 0 || *size < 16 || *size > maxMessage {
		return flagExit(errors.New("ws: -n must be ≥ 1, -d positive, -size at least 16"))
	}
	return runLoad(lf, dialBudget(*n)+*dur+15*time.Second, func(ctx context.Context, m *metrics) {
		echo(ctx, m, wsURL(lf.base, *room, "echo"), *n, *dur, *size)
	})
}

func echo(ctx context.Context, m *metrics, url string, n int, dur time.Duration, size int) {
	dialCtx, cancel := context.WithTimeout(ctx, dialBudget(n))
	conns := dialAll(dialCtx, m, url, n)
	cancel()
	m.set("sockets", float64(len(conns)))
	defer closeAll(conns)
	setDeadlines(ctx, conns)

	cpu0 := cpuSeconds()
	start := time.Now()
	stop := start.Add(dur)
	samples := make([][]time.Duration, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil && time.Now().Before(stop); seq++ {
				msg := payload(i, seq, size)
				t0 := time.Now()
				if err := c.send(ws.OpText, msg); err != nil {
					m.fail(fmt.Errorf("socket %d: send: %w", i, err))
					return
				}
				got, err := c.readMessage()
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
						return // the hard deadline cut the wait off
					}
					m.fail(fmt.Errorf("socket %d: read: %w", i, err))
					return
				}
				if !bytes.Equal(got, msg) {
					m.fail(fmt.Errorf("socket %d: echo %q, want %q", i, got, msg))
					return
				}
				samples[i] = append(samples[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s...)
	}
	m.set("msgs", float64(len(all)))
	m.set("msgs_per_s", round2(float64(len(all))/elapsed.Seconds()))
	m.set("elapsed_s", round2(elapsed.Seconds()))
	m.set("client_cpu_s", round2(cpuSeconds()-cpu0))
	setLatencies(m, all)
}

// payload returns a text message of size bytes that names its socket and
// sequence number: "<seq> <socket> xxxx…".
func payload(socket, seq, size int) []byte {
	p := fmt.Appendf(make([]byte, 0, size), "%d %d ", seq, socket)
	for len(p) < size {
		p = append(p, 'x')
	}
	return p[:size]
}
