package durable_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
	"github.com/durable-go/durable/internal/fsyncrate"
	"github.com/durable-go/durable/internal/hooks"
)

// Echo does no storage at all.
type Echo struct{}

func (e *Echo) Ping(ctx context.Context) (int, error) { return 1, nil }

// BenchmarkCall0 is the cost of the runtime itself: 8 callers, each on its
// own live object, calling a method that touches no storage.
func BenchmarkCall0(b *testing.B) {
	rt := durabletest.New(b)
	ns := durable.Define(rt, "ECHO", func(*durable.State) (*Echo, error) { return &Echo{}, nil })
	ctx := context.Background()
	stubs := make([]*durable.Stub[*Echo], 8)
	for i := range stubs {
		stubs[i] = ns.GetByName(strconv.Itoa(i))
		durable.Call0(ctx, stubs[i], (*Echo).Ping)
	}
	var next atomic.Int64
	b.SetParallelism(8 / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		stub := stubs[int(next.Add(1)-1)%len(stubs)]
		for pb.Next() {
			if _, err := durable.Call0(ctx, stub, (*Echo).Ping); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// Row updates one SQL row per call.
type Row struct{ st *durable.State }

func newRow(st *durable.State) (*Row, error) {
	r := &Row{st: st}
	return r, st.BlockConcurrencyWhile(func(ctx context.Context) error {
		return st.Storage().Exec("CREATE TABLE IF NOT EXISTS kv (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)").Err()
	})
}

func (r *Row) Set(ctx context.Context, kv [2]int64) (int64, error) {
	return kv[1], r.st.Storage().Exec("INSERT INTO kv VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET v = excluded.v", kv[0], kv[1]).Err()
}

func (r *Row) Touch(ctx context.Context) (int64, error) {
	var n int64
	_, err := r.st.Storage().Get("k", &n)
	return n, err
}

// loadResult is one load run.
type loadResult struct {
	calls    int64
	elapsed  time.Duration
	p50, p99 time.Duration
}

// runCalls runs callers per object against objects for d; each caller
// waits for each call (acknowledged = durable) before the next.
func runCalls(b *testing.B, ns *durable.Namespace[*Row], objects, callers int, d time.Duration) loadResult {
	ctx := context.Background()
	stubs := make([]*durable.Stub[*Row], objects)
	for i := range stubs {
		stubs[i] = ns.GetByName(fmt.Sprintf("o%05d", i))
		if _, err := durable.Call(ctx, stubs[i], (*Row).Set, [2]int64{0, 0}); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for _, s := range stubs {
		for c := 0; c < callers; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for v := int64(1); time.Now().Before(deadline); v++ {
					t0 := time.Now()
					if _, err := durable.Call(ctx, s, (*Row).Set, [2]int64{int64(c), v}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	r := loadResult{calls: int64(len(lat)), elapsed: time.Since(start)}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r
}

// benchCalls reports calls/s and the ratio to the raw fsync rate measured
// right before, in the data directory. -benchtime 3000x means 3 s of load.
func benchCalls(b *testing.B, objects, callers int) {
	benchCallsWith(b, objects, callers, durable.Config{})
}

func benchCallsWith(b *testing.B, objects, callers int, cfg durable.Config) {
	benchCallsOpt(b, objects, callers, cfg, false)
}

// benchCallsOpt also reports the process's CPU time per call; noMetrics
// defines the namespace without counters (metrics and usage off).
func benchCallsOpt(b *testing.B, objects, callers int, cfg durable.Config, noMetrics bool) {
	dir := b.TempDir()
	raw, err := fsyncrate.Measure(dir)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Dir = dir
	rt := durabletest.New(b, cfg)
	if noMetrics {
		hooks.DisableMetrics(rt)
	}
	ns := durable.Define(rt, "ROW", newRow)
	d := max(time.Duration(b.N)*time.Second/1000, 500*time.Millisecond)
	cpu0 := cpuTime()
	r := runCalls(b, ns, objects, callers, d)
	cpu := cpuTime() - cpu0
	rate := float64(r.calls) / r.elapsed.Seconds()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(r.calls), "cpu_ns/call")
	b.ReportMetric(rate, "calls/s")
	b.ReportMetric(raw, "rawfsync/s")
	b.ReportMetric(rate/raw, "x_raw")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCounting: what metrics and usage cost, on and off in one run
// (off: the namespace is defined without counters), on the hot counter
// and on many objects; cpu_ns/call is the steadier figure on a shared
// machine.
func BenchmarkCounting(b *testing.B) {
	for _, off := range []bool{true, false} {
		name := "counters=on"
		if off {
			name = "counters=off"
		}
		b.Run(name+"/hot/callers=64", func(b *testing.B) { benchCallsOpt(b, 1, 64, durable.Config{}, off) })
		b.Run(name+"/objects=1000/callers=4", func(b *testing.B) { benchCallsOpt(b, 1000, 4, durable.Config{}, off) })
	}
}

// BenchmarkCallSQL: Call with one SQL upsert on one hot object, 1 and 64
// callers, and over 1,000 objects with 4 callers each.
func BenchmarkCallSQL(b *testing.B) {
	b.Run("hot/callers=1", func(b *testing.B) { benchCalls(b, 1, 1) })
	b.Run("hot/callers=64", func(b *testing.B) { benchCalls(b, 1, 64) })
	b.Run("objects=1000/callers=4", func(b *testing.B) { benchCalls(b, 1000, 4) })
}

// BenchmarkActivation: the first call, one after another, to objects that
// exist on disk but are not live (and whose databases are closed): it
// reports the p50 and p99 of that first call. The set-up writes
// ACTIVATION_OBJECTS objects (default 10,000) once per run.
func BenchmarkActivation(b *testing.B) {
	n := 10000
	if s := os.Getenv("ACTIVATION_OBJECTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	ctx := context.Background()
	rt, err := durable.Open(durable.Config{Dir: dir, MaxOpenDatabases: 64})
	if err != nil {
		b.Fatal(err)
	}
	ns := durable.Define(rt, "ROW", newRow)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := durable.Call(ctx, ns.GetByName(fmt.Sprintf("a%06d", i)), (*Row).Set, [2]int64{1, 1}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	rt.Close(ctx)
	rt2 := durabletest.New(b, durable.Config{Dir: dir, MaxOpenDatabases: 64})
	ns2 := durable.Define(rt2, "ROW", newRow)
	lat := make([]time.Duration, 0, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := durable.Call0(ctx, ns2.GetByName(fmt.Sprintf("a%06d", i)), (*Row).Touch); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(n), "objects")
	b.ReportMetric(0, "ns/op")
}

// TestMemoryPerInstance reports the memory of an idle live instance whose
// database the open-database cap has closed, and of an open database
// (run with -v; it only reports).
func TestMemoryPerInstance(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measurement")
	}
	const n = 2000
	ctx := context.Background()
	measure := func(maxOpen int) (rssKiB, heapKiB float64, open int64) {
		rt := durabletest.New(t, durable.Config{MaxOpenDatabases: maxOpen, IdleTimeout: time.Hour})
		ns := durable.Define(rt, "ROW", newRow)
		// Create the objects' data first, then restart, so the measured
		// instances only read.
		for i := 0; i < n; i++ {
			if _, err := durable.Call(ctx, ns.GetByName(fmt.Sprintf("m%05d", i)), (*Row).Set, [2]int64{1, 1}); err != nil {
				t.Fatal(err)
			}
		}
		rt = durabletest.Restart(t, rt)
		ns = durable.Define(rt, "ROW", newRow)
		runtime.GC()
		rss0, heap0 := rssBytes(t), heapBytes()
		for i := 0; i < n; i++ {
			if _, err := durable.Call0(ctx, ns.GetByName(fmt.Sprintf("m%05d", i)), (*Row).Touch); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		rss1, heap1 := rssBytes(t), heapBytes()
		if live := durabletest.Live(rt); live != n {
			t.Fatalf("live = %d, want %d", live, n)
		}
		return float64(rss1-rss0) / n / 1024, float64(int64(heap1)-int64(heap0)) / n / 1024, rt.Stats().OpenDatabases
	}
	rss, heap, open := measure(16)
	t.Logf("idle live instance, database closed (%d open of %d): RSS %.1f KiB, Go heap %.1f KiB", open, n, rss, heap)
	rss2, heap2, open2 := measure(n + 100)
	t.Logf("idle live instance with its database open (%d open): RSS %.1f KiB, Go heap %.1f KiB; so an open database costs RSS %.1f KiB",
		open2, rss2, heap2, rss2-rss)
}

func heapBytes() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
