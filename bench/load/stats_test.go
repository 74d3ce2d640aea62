package main

import (
	"math"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1 // 1 … 100
	}
	thousand := make([]int, 1000)
	for i := range thousand {
		thousand[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []int
		p      float64
		want   int
	}{
		{"empty", nil, 50, 0},
		{"one sample", []int{7}, 99.9, 7},
		{"median of odd count", []int{1, 2, 3, 4, 5}, 50, 3},
		{"median of even count is the lower middle", []int{1, 2, 3, 4}, 50, 2},
		{"p99 of 100", hundred, 99, 99},
		{"p99.9 of 100 is the maximum", hundred, 99.9, 100},
		{"p90 of 100", hundred, 90, 90},
		{"p50 of 100", hundred, 50, 50},
		{"tiny p is the minimum", hundred, 0.001, 1},
		{"p100 is the maximum", hundred, 100, 100},
		{"p99.9 of 1000 is rank 999", thousand, 99.9, 999},
		{"p99 of 10 is the maximum", hundred[:10], 99, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nearestRank(tt.sorted, tt.p); got != tt.want {
				t.Errorf("nearestRank(%v, %v) = %d, want %d", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{5}, 5, true},
		{[]float64{3, 1, 2}, 2, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
		{[]float64{25, 16, 15}, 16, true},
	}
	for _, tt := range tests {
		got, ok := median(tt.xs)
		if got != tt.want || ok != tt.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tt.xs, got, ok, tt.want, tt.ok)
		}
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("median reordered its argument: %v", xs)
	}
}

func TestSetLatencies(t *testing.T) {
	m := newMetrics()
	var samples []time.Duration
	for i := 1000; i >= 1; i-- { // 1 ms … 1000 ms, unsorted
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	setLatencies(m, samples)
	got := m.snapshot()
	want := map[string]float64{"p50_ms": 500, "p90_ms": 900, "p99_ms": 990, "p999_ms": 999, "max_ms": 1000, "errors": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	empty := newMetrics()
	setLatencies(empty, nil)
	if _, ok := empty.snapshot()["p50_ms"]; ok {
		t.Error("no samples: p50_ms recorded")
	}
}

func TestMetrics_set(t *testing.T) {
	m := newMetrics()
	m.set("nan", math.NaN())
	m.set("inf", math.Inf(1))
	m.set("ok", 1.5)
	m.add("errors", 2)
	got := m.snapshot()
	if _, ok := got["nan"]; ok {
		t.Error("NaN recorded")
	}
	if _, ok := got["inf"]; ok {
		t.Error("Inf recorded")
	}
	if got["ok"] != 1.5 || got["errors"] != 2 {
		t.Errorf("metrics = %v", got)
	}
}

func TestMs(t *testing.T) {
	if got := ms(1234567 * time.Nanosecond); got != 1.235 {
		t.Errorf("ms(1.234567ms) = %v, want 1.235", got)
	}
}

func TestSetLateness(t *testing.T) {
	m := newMetrics()
	late := []float64{3, -1.5, 0.25, 7, 1, 2, 4, 5, 6, 8}
	setLateness(m, late)
	got := m.snapshot()
	want := map[string]float64{"fired": 10, "early": 1, "late_min_ms": -1.5, "late_p50_ms": 3, "late_p99_ms": 8, "late_max_ms": 8}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
