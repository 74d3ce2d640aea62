package durable_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Beacon is the class of the alarm benchmarks: each firing writes one row
// and reports its lateness; with a period it re-arms itself.
type Beacon struct {
	st  *durable.State
	rec *lateness
}

type lateness struct {
	mu     sync.Mutex
	late   []time.Duration
	last   atomic.Int64 // Unix ns of the latest handler start
	period time.Duration
	zero   time.Time // if set, delays are measured from it (fake-clock runs)
}

func (r *lateness) add(d time.Duration, now time.Time) {
	r.mu.Lock()
	r.late = append(r.late, d)
	r.mu.Unlock()
	r.last.Store(now.UnixNano())
}

func (r *lateness) reset() {
	r.mu.Lock()
	r.late = nil
	r.mu.Unlock()
	r.last.Store(0)
}

func (r *lateness) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.late)
}

func (r *lateness) percentiles() (p50, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := append([]time.Duration(nil), r.late...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return 0, 0
	}
	return l[len(l)/2], l[len(l)*99/100]
}

func (b *Beacon) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	now := time.Now()
	var at int64
	b.st.Storage().Get("at", &at)
	sched := time.UnixMilli(at)
	if !b.rec.zero.IsZero() {
		b.rec.add(now.Sub(b.rec.zero), now)
	} else {
		b.rec.add(now.Sub(sched), now)
	}
	if err := b.st.Storage().Put("last", now.UnixNano()); err != nil {
		return err
	}
	if b.rec.period > 0 {
		next := sched.Add(b.rec.period)
		b.st.Storage().Put("at", next.UnixMilli())
		return b.st.Storage().SetAlarm(next)
	}
	return nil
}

func (b *Beacon) ArmAt(ctx context.Context, atMs int64) (bool, error) {
	if err := b.st.Storage().Put("at", atMs); err != nil {
		return false, err
	}
	return true, b.st.Storage().SetAlarm(time.UnixMilli(atMs))
}

// processCPU returns the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func defineBeacon(rt *durable.Runtime, rec *lateness) *durable.Namespace[*Beacon] {
	return durable.Define(rt, "BEACON", func(st *durable.State) (*Beacon, error) { return &Beacon{st: st, rec: rec}, nil })
}

// armAll arms n objects for atMs(i), 64 at a time.
func armAll(b *testing.B, ns *durable.Namespace[*Beacon], n int, atMs func(i int) int64) {
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := durable.Call(ctx, ns.GetByName(fmt.Sprintf("b%06d", i)), (*Beacon).ArmAt, atMs(i)); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

func waitCount(b *testing.B, rec *lateness, n int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for rec.count() < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d alarms fired", rec.count(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkAlarmFire: every object's alarm comes due at the same moment
// (a fake clock jumps to it); the rate is alarms fired (handler started)
// per second of real time from then, each handler writing one row; the
// delays are handler start minus that moment (queueing under the burst).
// live: 2,000 objects live with open databases, five bursts in a row (the
// median is reported); evicted: the runtime was restarted, so each alarm
// first activates its object.
func BenchmarkAlarmFire(b *testing.B) {
	for _, c := range []struct {
		name    string
		n       int
		evicted bool
		rounds  int
	}{{"live=2000", 2000, false, 5}, {"evicted=4000", 4000, true, 1}, {"evicted=10000", 10000, true, 1}} {
		b.Run(c.name, func(b *testing.B) {
			clk := durabletest.NewClock()
			dir := b.TempDir()
			cfg := durable.Config{Dir: dir, IdleTimeout: 24 * time.Hour, Clock: clk}
			rt, err := durable.Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			rec := &lateness{}
			ns := defineBeacon(rt, rec)
			var rates, p50s, p99s []float64
			for round := 0; round < c.rounds; round++ {
				due := clk.Now().Add(time.Minute).UnixMilli()
				armAll(b, ns, c.n, func(int) int64 { return due })
				if c.evicted {
					rt.Close(context.Background())
					if rt, err = durable.Open(cfg); err != nil {
						b.Fatal(err)
					}
					defineBeacon(rt, rec)
					if live := durabletest.Live(rt); live != 0 {
						b.Fatalf("%d live before the alarms", live)
					}
				}
				rec.reset()
				b.ResetTimer()
				t0 := time.Now()
				rec.zero = t0
				clk.Advance(2 * time.Minute)
				waitCount(b, rec, c.n, 5*time.Minute)
				b.StopTimer()
				p50, p99 := rec.percentiles()
				rates = append(rates, float64(c.n)/time.Unix(0, rec.last.Load()).Sub(t0).Seconds())
				p50s = append(p50s, float64(p50.Microseconds())/1000)
				p99s = append(p99s, float64(p99.Microseconds())/1000)
			}
			rt.Close(context.Background())
			b.ReportMetric(median(rates), "alarms/s")
			b.ReportMetric(median(p50s), "delay_p50_ms")
			b.ReportMetric(median(p99s), "delay_p99_ms")
			b.ReportMetric(0, "ns/op")
			if len(rates) > 1 {
				b.Logf("per burst: %.0f alarms/s", rates)
			}
		})
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkAlarmLateness: 2,000 live objects each re-arm every 200 ms,
// staggered, for a steady 10,000 alarms/s with a one-row write each; it
// reports the lateness (handler start minus the alarm's time).
func BenchmarkAlarmLateness(b *testing.B) {
	const n, period = 2000, 200 * time.Millisecond
	rec := &lateness{period: period}
	rt := durabletest.New(b, durable.Config{IdleTimeout: time.Hour})
	ns := defineBeacon(rt, rec)
	// Create the objects (and open their databases) first, with alarms far
	// ahead; then move every alarm into the staggered schedule.
	far := time.Now().Add(time.Hour).UnixMilli()
	armAll(b, ns, n, func(int) int64 { return far })
	t0 := time.Now()
	start := t0.Add(2 * time.Second).UnixMilli()
	armAll(b, ns, n, func(i int) int64 { return start + int64(i)*period.Milliseconds()/n })
	if took := time.Since(t0); took > 2*time.Second {
		b.Fatalf("arming took %v: the schedule started before it was set", took)
	}
	b.ResetTimer()
	cpu0 := processCPU()
	waitCount(b, rec, 3*10000, time.Minute) // ~3 s of steady load
	cpu := processCPU() - cpu0
	b.StopTimer()
	p50, p99 := rec.percentiles()
	b.ReportMetric(float64(cpu.Microseconds())/float64(rec.count()), "cpu_us/alarm")
	elapsed := time.Unix(0, rec.last.Load()).Sub(time.UnixMilli(start))
	b.ReportMetric(float64(rec.count())/elapsed.Seconds(), "alarms/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "late_p50_ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "late_p99_ms")
	b.ReportMetric(0, "ns/op")
}
