package metrics

import (
	"sync"
	"testing"
	"time"
)

func TestHistogramBucketsAreCumulativeAcrossStripes(t *testing.T) {
	h := NewSeconds()
	h.ObserveAt(1, int64(40*time.Microsecond)) // ≤ 50 µs
	h.ObserveAt(2, int64(50*time.Microsecond)) // ≤ 50 µs (bounds are inclusive)
	h.ObserveAt(3, int64(3*time.Millisecond))  // ≤ 5 ms
	h.ObserveAt(9, int64(20*time.Second))      // +Inf only (stripe 9 is 1)
	s := h.Snapshot()
	if s.Count != 4 {
		t.Fatalf("count %d, want 4", s.Count)
	}
	for bound, want := range map[float64]uint64{50e-6: 2, 100e-6: 2, 2.5e-3: 2, 5e-3: 3, 10: 3} {
		if got := s.Buckets[bound]; got != want {
			t.Errorf("bucket ≤ %v s = %d, want %d", bound, got, want)
		}
	}
	want := (40e-6 + 50e-6 + 3e-3 + 20)
	if d := s.Sum - want; d > 1e-9 || d < -1e-9 {
		t.Errorf("sum %v s, want %v", s.Sum, want)
	}
}

func TestCounterSumsStripesUnderConcurrency(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 1000 {
				c.IncAt(uint8(g))
			}
			c.Inc()
		})
	}
	wg.Wait()
	if got := c.Load(); got != 8*1000+8 {
		t.Fatalf("count %d, want %d", got, 8*1000+8)
	}
}

func TestStripeOf(t *testing.T) {
	seen := map[uint8]bool{}
	for _, id := range []string{"", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "af"} {
		k := StripeOf(id)
		if k >= Stripes {
			t.Fatalf("StripeOf(%q) = %d, not below %d", id, k, Stripes)
		}
		seen[k] = true
	}
	if len(seen) < Stripes {
		t.Errorf("hex IDs reach %d of %d stripes", len(seen), Stripes)
	}
}

func TestGaugeGoesUpAndDownAcrossStripes(t *testing.T) {
	var g Gauge
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Go(func() {
			for range 1000 {
				g.AddAt(uint8(k), 1)
				g.AddAt(uint8(k+3), -1) // another stripe: stripes go negative
			}
			g.AddAt(uint8(k), 2)
		})
	}
	wg.Wait()
	if got := g.Load(); got != 16 {
		t.Fatalf("gauge %d, want 16", got)
	}
}
