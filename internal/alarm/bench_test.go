package alarm

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/store"
)

// buildIndex writes n entries, due over the past minute, into a fresh
// index at dir.
func buildIndex(b *testing.B, dir string, n int) {
	st, err := store.Open(store.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	idx, err := st.AcquireNode("runtime")
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Release()
	now := time.Now().UnixMilli()
	for start := 0; start < n; start += 100_000 {
		if err := idx.Begin(); err != nil {
			b.Fatal(err)
		}
		if start == 0 {
			if err := idx.Exec(schemaSQL).Err(); err != nil {
				b.Fatal(err)
			}
			if err := idx.Exec("INSERT INTO alarm_meta VALUES ('seq_floor', ?)", n+1).Err(); err != nil {
				b.Fatal(err)
			}
		}
		for i := start; i < min(n, start+100_000); i++ {
			if err := idx.Exec("INSERT INTO alarm_index VALUES (?, ?, ?, ?)", "NS", fmt.Sprintf("obj%07d", i),
				now-60_000+int64(i%60_000), i+1).Err(); err != nil {
				b.Fatal(err)
			}
		}
		p, err := idx.End(nil)
		if err != nil {
			b.Fatal(err)
		}
		idx.Commit()
		if err := p.Wait(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndex1M holds ALARM_INDEX_ENTRIES (default 1,000,000) due
// entries in the index and reports: the time from Open to the first
// firing (load at start), the Go heap the scheduler holds then, and the
// rate at which it finds and fires due entries (each reported Cleared at
// once, so the rate includes the index deletes).
func BenchmarkIndex1M(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("ALARM_INDEX_ENTRIES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	t0 := time.Now()
	buildIndex(b, dir, n)
	b.Logf("built an index of %d entries in %v", n, time.Since(t0).Round(time.Millisecond))
	st, err := store.Open(store.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	idx, err := st.AcquireNode("runtime")
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Release()
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var fired atomic.Int64
	first := make(chan time.Time, 1)
	all := make(chan time.Time, 1)
	var s *Scheduler
	start := time.Now()
	b.ResetTimer()
	s, err = Open(Config{Index: idx, Clock: clock.Real(), Log: slog.New(slog.DiscardHandler), Fire: func(e Entry) error {
		k := fired.Add(1)
		if k == 1 {
			first <- time.Now()
		}
		if k == int64(n) {
			all <- time.Now()
		}
		go s.Done(Outcome{Entry: e, Kind: Cleared})
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tFirst := <-first
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	tAll := <-all
	b.StopTimer()
	b.ReportMetric(float64(tFirst.Sub(start).Microseconds())/1000, "load_ms")
	b.ReportMetric(float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/(1<<20), "heap_MiB")
	b.ReportMetric(float64(n)/tAll.Sub(tFirst).Seconds(), "fired/s")
	b.ReportMetric(float64(s.Stats().Loads), "pages")
	b.ReportMetric(0, "ns/op")
}
