package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// runIdle is the wsidle subcommand: what n idle sockets cost the server in
// memory and file descriptors.
func runIdle(args []string) int {
	lf := newLoadFlags("wsidle")
	n := lf.fs.Int("n", 9000, "idle sockets to open")
	hold := lf.fs.Duration("hold", 3*time.Second, "how long to hold them open before measuring")
	room := lf.fs.String("room", "idle", "room name; use a new one per run")
	pid := lf.fs.Int("pid", 0, "server process to measure (without it only the socket count is checked)")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *n < 1 || *hold < 0 {
		return flagExit(errors.New("wsidle: -n must be ≥ 1 and -hold not negative"))
	}
	if *pid <= 0 {
		logf("wsidle: no -pid: server memory and fds are not measured")
	}
	c := idleConfig{base: lf.base, room: *room, n: *n, hold: *hold, pid: *pid}
	return runLoad(lf, dialBudget(*n)+*hold+20*time.Second, func(ctx context.Context, m *metrics) {
		idle(ctx, m, c)
	})
}

type idleConfig struct {
	base, room string
	n          int
	hold       time.Duration
	pid        int // 0: do not measure the server
}

func idle(ctx context.Context, m *metrics, c idleConfig) {
	var before int64
	haveBefore := false
	if c.pid > 0 {
		before, haveBefore = sampleRSS(m, c.pid, "rss_before_kib")
	}
	dialCtx, cancel := context.WithTimeout(ctx, dialBudget(c.n))
	conns := dialAll(dialCtx, m, wsURL(c.base, c.room, "echo"), c.n)
	cancel()
	defer closeAll(conns)
	m.set("sockets", float64(len(conns)))

	count, err := roomCount(ctx, c.base, c.room, c.n)
	if err != nil {
		m.fail(fmt.Errorf("room count: %w", err))
	}
	m.set("count", float64(count))
	m.set("count_ok", boolMetric(count == c.n))

	if !sleepCtx(ctx, c.hold) || c.pid <= 0 {
		return
	}
	after, haveAfter := sampleRSS(m, c.pid, "rss_after_kib")
	if haveBefore && haveAfter && len(conns) > 0 {
		m.set("kib_per_socket", round2(float64(after-before)/float64(len(conns))))
	}
	if fds, err := fdCount(c.pid); err != nil {
		m.fail(fmt.Errorf("fds of pid %d: %w", c.pid, err))
	} else {
		m.set("server_fds", float64(fds))
	}
}

func boolMetric(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
