package main

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// nearestRank returns the p-th percentile (0 < p ≤ 100) of sorted, which
// must be in ascending order, by the nearest-rank method: the smallest value
// such that at least p percent of the samples are less than or equal to it.
// It returns the zero value for no samples.
func nearestRank[T cmp.Ordered](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	// The tolerance keeps p = 99.9 of 1000 samples at rank 999, which
	// binary floating point would otherwise round up to 1000.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// latencyPercentiles are the percentiles every latency summary reports,
// with their metric names.
var latencyPercentiles = []struct {
	name string
	p    float64
}{
	{"p50_ms", 50},
	{"p90_ms", 90},
	{"p99_ms", 99},
	{"p999_ms", 99.9},
}

// setLatencies sorts samples and records their percentiles and maximum in
// milliseconds. With no samples it records nothing.
func setLatencies(m *metrics, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	for _, lp := range latencyPercentiles {
		m.set(lp.name, ms(nearestRank(samples, lp.p)))
	}
	m.set("max_ms", ms(samples[len(samples)-1]))
}

// median returns the median of xs (the mean of the two middle values for an
// even count) and false for no values. xs is not modified.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Sorted(slices.Values(xs))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid], true
	}
	return (s[mid-1] + s[mid]) / 2, true
}
