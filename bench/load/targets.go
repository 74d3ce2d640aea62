package main

import (
	"fmt"
	"strings"
)

// A check is one measurable condition of a target. With den set, the
// measured value is the median over rounds of num's metric ÷ den's, each
// ratio taken within one round; with den empty it is the median of num's
// metric over rounds.
type check struct {
	scenario, metric string
	num, den         string
	atMost           bool // the measured value must be ≤ bound; otherwise ≥
	bound            float64
}

// A target is one goal of the comparison; it is met when all its checks are.
type target struct {
	desc   string
	goal   string
	checks []check
}

// targets are the goals the report checks, in report order.
var targets = []target{
	{"hot counter, 64 connections: req/s", "≥ 20× workerd and ≥ 15,000 req/s", []check{
		{scenario: "hot_counter_c64", metric: "rps", num: durableServer, den: workerdServer, bound: 20},
		{scenario: "hot_counter_c64", metric: "rps", num: durableServer, bound: 15000},
	}},
	{"hot counter, 1 connection: p50 latency", "≤ workerd's (ratio ≤ 1)", []check{
		{scenario: "hot_counter_c1", metric: "p50_ms", num: durableServer, den: workerdServer, atMost: true, bound: 1},
	}},
	{"cold activation: objects/s", "≥ 20× workerd", []check{
		{scenario: "cold", metric: "objects_per_s", num: durableServer, den: workerdServer, bound: 20},
	}},
	{"memory per live object, database open", "≤ workerd's (ratio ≤ 1)", []check{
		{scenario: "cold", metric: "kib_per_object", num: durableServer, den: workerdServer, atMost: true, bound: 1},
	}},
	{"memory per live object, database closed by the cap (durable-capped)", "≤ 1/3 of workerd's (ratio ≤ 0.333)", []check{
		{scenario: "cold", metric: "kib_per_object", num: "durable-capped", den: workerdServer, atMost: true, bound: 0.333},
	}},
	{"memory per idle socket", "≤ 1/15 of workerd's (ratio ≤ 0.0667)", []check{
		{scenario: "ws_idle", metric: "kib_per_socket", num: durableServer, den: workerdServer, atMost: true, bound: 0.0667},
	}},
	{"broadcast deliveries/s", "≥ 5× workerd", []check{
		{scenario: "ws_broadcast", metric: "deliveries_per_s", num: durableServer, den: workerdServer, bound: 5},
	}},
	{"alarm lateness p99 (durable alone)", "≤ 10 ms", []check{
		{scenario: "alarm", metric: "late_p99_ms", num: durableServer, atMost: true, bound: 10},
	}},
}

// measure returns the value the check compares with its bound and false
// when the data for it is missing.
func (c check) measure(d *dataset) (float64, bool) {
	if c.den != "" {
		return median(d.ratios(c.scenario, c.metric, c.num, c.den))
	}
	return median(d.values(c.scenario, c.num, c.metric))
}

func (c check) met(v float64) bool {
	if c.atMost {
		return v <= c.bound
	}
	return v >= c.bound
}

// Verdicts of a target.
const (
	verdictMet         = "yes"
	verdictMissed      = "no"
	verdictNotMeasured = "not measured"
)

// evaluate returns what was measured for t, as text, and its verdict: "no"
// as soon as one measured check fails, "not measured" if a check lacks data
// and none failed, "yes" when every check was measured and met.
func (t target) evaluate(d *dataset) (measured, verdict string) {
	var parts []string
	missing, failed := false, false
	for _, c := range t.checks {
		v, ok := c.measure(d)
		switch {
		case !ok:
			missing = true
			parts = append(parts, "not measured")
		case c.den != "":
			parts = append(parts, fmt.Sprintf("%s÷%s %s×", c.num, c.den, fmtRatio(v)))
		default:
			parts = append(parts, fmt.Sprintf("%s %s %s", c.num, c.metric, fmtNum(v)))
		}
		if ok && !c.met(v) {
			failed = true
		}
	}
	measured = strings.Join(parts, "; ")
	switch {
	case failed:
		return measured, verdictMissed
	case missing:
		return measured, verdictNotMeasured
	}
	return measured, verdictMet
}
