package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
)

// Server names with a fixed place: durable and workerd come first and are
// the two sides of every ratio; other servers follow in name order.
const (
	durableServer = "durable"
	workerdServer = "workerd"
)

// knownScenarios are the labels the harness uses, in report order; other
// scenarios follow in name order.
var knownScenarios = []string{
	"hot_counter_c1", "hot_counter_c64", "hot_kv_c1", "hot_kv_c64",
	"cold", "ws_echo", "ws_broadcast", "ws_idle", "alarm",
}

// dataset holds result lines indexed scenario → server → round → metrics.
type dataset struct {
	runs  map[string]map[string]map[int]map[string]float64
	lines int // results read
}

// readResults reads result lines. Blank lines are skipped; lines that are
// not results are skipped with a warning on stderr; of two lines for the
// same scenario, server and round the later wins.
func readResults(r io.Reader) (*dataset, error) {
	d := &dataset{runs: map[string]map[string]map[int]map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(line, &res); err != nil {
			logf("report: line %d: %v (skipped)", lineNo, err)
			continue
		}
		if res.Scenario == "" || res.Server == "" {
			logf("report: line %d: no scenario or server (skipped)", lineNo)
			continue
		}
		d.add(res, lineNo)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return d, nil
}

func (d *dataset) add(res Result, lineNo int) {
	servers := d.runs[res.Scenario]
	if servers == nil {
		servers = map[string]map[int]map[string]float64{}
		d.runs[res.Scenario] = servers
	}
	rounds := servers[res.Server]
	if rounds == nil {
		rounds = map[int]map[string]float64{}
		servers[res.Server] = rounds
	}
	if _, dup := rounds[res.Round]; dup {
		logf("report: line %d: second result for %s/%s round %d replaces the first", lineNo, res.Scenario, res.Server, res.Round)
	}
	rounds[res.Round] = res.Metrics
	d.lines++
}

// scenarios returns the scenarios present, known ones first in harness order.
func (d *dataset) scenarios() []string {
	return slices.SortedFunc(maps.Keys(d.runs), func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(knownScenarios, a), rank(knownScenarios, b)), cmp.Compare(a, b))
	})
}

// servers returns the servers of scenario, or of all scenarios for "",
// durable and workerd first.
func (d *dataset) servers(scenario string) []string {
	set := map[string]bool{}
	for s, servers := range d.runs {
		if scenario == "" || s == scenario {
			for name := range servers {
				set[name] = true
			}
		}
	}
	order := []string{durableServer, workerdServer}
	return slices.SortedFunc(maps.Keys(set), func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(order, a), rank(order, b)), cmp.Compare(a, b))
	})
}

// rank is the index of s in order, or len(order) for any other s.
func rank(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// rounds returns the rounds server ran scenario, in ascending order.
func (d *dataset) rounds(scenario, server string) []int {
	return slices.Sorted(maps.Keys(d.runs[scenario][server]))
}

// metricNames returns every metric any server reported for scenario, sorted.
func (d *dataset) metricNames(scenario string) []string {
	set := map[string]bool{}
	for _, rounds := range d.runs[scenario] {
		for _, m := range rounds {
			for name := range m {
				set[name] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// values returns metric of server in scenario over its rounds, in round order.
func (d *dataset) values(scenario, server, metric string) []float64 {
	var out []float64
	for _, r := range d.rounds(scenario, server) {
		if v, ok := d.runs[scenario][server][r][metric]; ok {
			out = append(out, v)
		}
	}
	return out
}

// ratios returns, for every round in which both num and den reported
// metric in scenario and den's value is not zero, num's value ÷ den's.
func (d *dataset) ratios(scenario, metric, num, den string) []float64 {
	var out []float64
	for _, r := range d.rounds(scenario, num) {
		a, okA := d.runs[scenario][num][r][metric]
		b, okB := d.runs[scenario][den][r][metric]
		if okA && okB && b != 0 {
			out = append(out, a/b)
		}
	}
	return out
}

// spread summarizes values over rounds.
type spread struct {
	min, median, max float64
	n                int
}

func spreadOf(xs []float64) (spread, bool) {
	med, ok := median(xs)
	if !ok {
		return spread{}, false
	}
	return spread{min: slices.Min(xs), median: med, max: slices.Max(xs), n: len(xs)}, true
}
