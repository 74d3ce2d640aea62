package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	alarmWorkers = 8
	// Alarms are set this far ahead at most: some fire before the kill,
	// some are pending across it.
	alarmAheadMax = 1500 * time.Millisecond
	// Liveness only: an alarm must have fired this long after its time
	// (after the restart).
	alarmFireTimeout = 20 * time.Second
)

// probe is one alarm the clients set, with what they know of it.
type probe struct {
	name         string
	acked        bool  // the set was answered 200
	scheduledFor int64 // ms since the epoch, from the answer
}

// probeReport is GET /alarm/<name> of --app bench.
type probeReport struct {
	Armed        bool     `json:"armed"`
	ScheduledFor *float64 `json:"scheduledFor"`
	FiredAt      *float64 `json:"firedAt"`
	Fires        int64    `json:"fires"`
	PendingAlarm *int64   `json:"pendingAlarm"`
}

// TestServe_KillAlarms sets alarms from concurrent clients on the bench
// app's probes, kills the server with SIGKILL at a random moment, restarts
// it and checks every probe: an alarm whose set was acknowledged fires
// (once or more, never zero times), so does one whose set committed
// without its answer reaching the client (the probe says it is armed), and
// none fires before its time. Cycles as TestServe_KillUnderLoad.
func TestServe_KillAlarms(t *testing.T) {
	cycles := killCycles(t)
	dir := t.TempDir()
	var total, acked, fired int
	start := time.Now()
	s := startServer(t, dir, "--app", "bench")
	for cycle := range cycles {
		probes, killAfter := runAlarmKillCycle(t, s, cycle)
		s = startServer(t, dir, "--app", "bench")
		n, a, f, problems := checkAlarms(s, probes)
		for _, p := range problems {
			t.Errorf("cycle %d: %s", cycle, p)
		}
		total, acked, fired = total+n, acked+a, fired+f
		t.Logf("cycle %d: killed %v into the load; %d alarms set, %d acknowledged, %d fired",
			cycle, killAfter.Round(time.Millisecond), n, a, f)
		if t.Failed() {
			return
		}
	}
	s.stop()
	t.Logf("%d cycles in %v: %d alarms set, %d acknowledged, %d fired (each acknowledged one at least once)",
		cycles, time.Since(start).Round(time.Millisecond), total, acked, fired)
}

// runAlarmKillCycle sets alarms from alarmWorkers clients until it kills s.
func runAlarmKillCycle(t *testing.T, s *server, cycle int) ([]*probe, time.Duration) {
	var (
		mu       sync.Mutex
		probes   []*probe
		killed   atomic.Bool
		stop     atomic.Bool
		firstAck = make(chan struct{})
		once     sync.Once
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadStart := time.Now()
	for w := range alarmWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				p := &probe{name: fmt.Sprintf("c%d-w%d-%d", cycle, w, i)}
				mu.Lock()
				probes = append(probes, p)
				mu.Unlock()
				ms := rand.N(alarmAheadMax.Milliseconds())
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/alarm/%s/set?ms=%d", s.base, p.name, ms), nil)
				resp, err := s.client.Do(req)
				if err != nil {
					if !killed.Load() {
						t.Errorf("set %s before the kill: %v", p.name, err)
					}
					continue
				}
				var armed struct {
					ScheduledFor int64 `json:"scheduledFor"`
				}
				err = json.NewDecoder(resp.Body).Decode(&armed)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil {
					if !killed.Load() {
						t.Errorf("set %s: %d (%v); want 200 with JSON", p.name, resp.StatusCode, err)
					}
					continue
				}
				mu.Lock()
				p.acked, p.scheduledFor = true, armed.ScheduledFor
				mu.Unlock()
				once.Do(func() { close(firstAck) })
			}
		}()
	}
	time.Sleep(killMin + rand.N(killMax-killMin))
	select {
	case <-firstAck:
	case <-time.After(firstAckTimeout):
		t.Errorf("no alarm set was acknowledged within %v", firstAckTimeout)
	}
	killAfter := time.Since(loadStart)
	stop.Store(true)
	killed.Store(true)
	s.kill()
	if !drainClients(&wg, cancel) {
		t.Errorf("clients still waiting %v after the kill", drainTimeout)
	}
	return probes, killAfter
}

// checkAlarms waits for every alarm that must fire and checks none fired
// early. It returns the counts and what is wrong.
func checkAlarms(s *server, probes []*probe) (total, acked, fired int, problems []string) {
	deadline := time.Now().Add(alarmAheadMax + alarmFireTimeout)
	for _, p := range probes {
		total++
		if p.acked {
			acked++
		}
		for {
			r, err := s.tryDo(http.MethodGet, "/alarm/"+p.name)
			var rep probeReport
			if err == nil && r.status == http.StatusOK {
				err = json.Unmarshal(r.body, &rep)
			} else if err == nil {
				err = fmt.Errorf("status %d: %s", r.status, r.body)
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: report: %v", p.name, err))
				break
			}
			if p.acked && (!rep.Armed || rep.ScheduledFor == nil || int64(*rep.ScheduledFor) != p.scheduledFor) {
				problems = append(problems, fmt.Sprintf("%s: set for %d was acknowledged, but after the restart the probe reads %s (the set was lost)",
					p.name, p.scheduledFor, r.body))
				break
			}
			if !rep.Armed {
				break // never committed, never acknowledged: nothing to fire
			}
			if rep.Fires > 0 {
				fired++
				if *rep.FiredAt < *rep.ScheduledFor {
					problems = append(problems, fmt.Sprintf("%s fired %.3f ms before its time", p.name, *rep.ScheduledFor-*rep.FiredAt))
				}
				break
			}
			if rep.PendingAlarm == nil {
				problems = append(problems, fmt.Sprintf("%s: armed (acknowledged: %v) but it never fired and no alarm is pending: the alarm was lost (%s)",
					p.name, p.acked, r.body))
				break
			}
			if time.Now().After(deadline) {
				problems = append(problems, fmt.Sprintf("%s: pending, not fired %v after its time: %s", p.name, alarmFireTimeout, r.body))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(problems) >= 20 {
			break
		}
	}
	return total, acked, fired, problems
}
