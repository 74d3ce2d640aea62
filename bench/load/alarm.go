package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// alarmParallel is how many alarm requests are in flight at once.
	alarmParallel = 16
	// alarmPoll is the pause between two polls of the unfired alarms.
	alarmPoll = 50 * time.Millisecond
)

// runAlarm is the alarm subcommand: n objects each set an alarm ms ahead;
// the client polls them until all fired and reports how late they ran, as
// the servers measured it (firedAt - scheduledFor).
func runAlarm(args []string) int {
	lf := newLoadFlags("alarm")
	n := lf.fs.Int("n", 200, "alarms (one object each)")
	after := lf.fs.Int("ms", 50, "each alarm is set this many milliseconds ahead")
	prefix := lf.fs.String("prefix", "alarm", "object names are <prefix>-<i>; use a new prefix per run")
	wait := lf.fs.Duration("wait", 5*time.Second, "how long to poll for alarms that have not fired")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *n < 1 || *after < 0 || *wait <= 0 {
		return flagExit(errors.New("alarm: -n must be ≥ 1, -ms not negative and -wait positive"))
	}
	c := alarmConfig{base: lf.base, prefix: *prefix, n: *n, after: time.Duration(*after) * time.Millisecond, wait: *wait}
	return runLoad(lf, 30*time.Second+c.after+c.wait, func(ctx context.Context, m *metrics) {
		alarms(ctx, m, c)
	})
}

type alarmConfig struct {
	base, prefix string
	n            int
	after        time.Duration
	wait         time.Duration
}

func (c alarmConfig) url(i int) string {
	return fmt.Sprintf("%s/alarm/%s-%d", c.base, c.prefix, i)
}

// alarmState is the part of GET /alarm/<name> the client reads; LateByMs
// is nil (JSON null) while the alarm has not fired.
type alarmState struct {
	Fires    int      `json:"fires"`
	LateByMs *float64 `json:"lateByMs"`
}

func alarms(ctx context.Context, m *metrics, c alarmConfig) {
	cl := newHTTPClient(alarmParallel)
	defer cl.CloseIdleConnections()

	// Set every alarm.
	set := make([]bool, c.n)
	parallel(ctx, c.n, func(i int) {
		url := fmt.Sprintf("%s/set?ms=%d", c.url(i), c.after.Milliseconds())
		body, err := call(ctx, cl, http.MethodPost, url)
		if err == nil {
			var resp struct{ SetAt, ScheduledFor *float64 }
			if err = json.Unmarshal(body, &resp); err == nil && (resp.SetAt == nil || resp.ScheduledFor == nil) {
				err = fmt.Errorf("POST %s: no setAt/scheduledFor in %.200s", url, body)
			}
		}
		if err != nil {
			m.fail(err)
			return
		}
		set[i] = true
	})
	var pending []int
	for i, ok := range set {
		if ok {
			pending = append(pending, i)
		}
	}
	m.set("set", float64(len(pending)))

	// Poll the unfired ones until all fired or the wait is over.
	deadline := time.Now().Add(c.after + c.wait)
	var mu sync.Mutex
	var late []float64 // guarded by mu
	var refired atomic.Int64
	sleepCtx(ctx, c.after)
	for len(pending) > 0 && ctx.Err() == nil && time.Now().Before(deadline) {
		fired := make([]bool, len(pending))
		parallel(ctx, len(pending), func(k int) {
			url := c.url(pending[k])
			var st alarmState
			body, err := call(ctx, cl, http.MethodGet, url)
			if err == nil {
				err = json.Unmarshal(body, &st)
			}
			if err != nil {
				m.fail(fmt.Errorf("GET %s: %w", url, err))
				return
			}
			if st.LateByMs == nil {
				return
			}
			fired[k] = true
			if st.Fires > 1 {
				refired.Add(1)
			}
			mu.Lock()
			late = append(late, *st.LateByMs)
			mu.Unlock()
		})
		unfired := pending[:0]
		for k, i := range pending {
			if !fired[k] {
				unfired = append(unfired, i)
			}
		}
		pending = unfired
		if len(pending) > 0 {
			sleepCtx(ctx, alarmPoll)
		}
	}
	setLateness(m, late)
	m.set("unfired", float64(len(pending)))
	m.set("refired", float64(refired.Load()))
}

// setLateness records how many alarms fired, how many fired before their
// time, and percentiles of their lateness in milliseconds.
func setLateness(m *metrics, late []float64) {
	m.set("fired", float64(len(late)))
	early := 0
	for _, l := range late {
		if l < 0 {
			early++
		}
	}
	m.set("early", float64(early))
	if len(late) == 0 {
		return
	}
	slices.Sort(late)
	r3 := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	m.set("late_min_ms", r3(late[0]))
	m.set("late_p50_ms", r3(nearestRank(late, 50)))
	m.set("late_p99_ms", r3(nearestRank(late, 99)))
	m.set("late_max_ms", r3(late[len(late)-1]))
}

// parallel calls fn(0) … fn(n-1), alarmParallel at a time, and returns when
// all calls returned; once ctx is done no new call starts.
func parallel(ctx context.Context, n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(alarmParallel, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
