package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mustDataset reads testdata/results.jsonl, keeping the lines keep accepts.
func mustDataset(tb testing.TB, keep func(Result) bool) *dataset {
	tb.Helper()
	raw, err := os.ReadFile("testdata/results.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	var kept bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatalf("testdata: %v", err)
		}
		if keep == nil || keep(r) {
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
		}
	}
	d, err := readResults(&kept)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestDataset_ratios(t *testing.T) {
	d := mustDataset(t, nil)
	tests := []struct {
		scenario, metric, num, den string
		want                       float64
		rounds                     int
	}{
		// Per-round ratios 25, 16, 15: the median is 16, although the
		// ratio of the medians would be 20.
		{"hot_counter_c64", "rps", "durable", "workerd", 16, 3},
		{"hot_counter_c1", "p50_ms", "durable", "workerd", 0.3, 3},
		{"cold", "objects_per_s", "durable", "workerd", 25, 3},
		{"cold", "kib_per_object", "durable", "workerd", 100.0 / 150, 3},
		{"cold", "kib_per_object", "durable-capped", "workerd", 50.0 / 140, 3},
		{"ws_idle", "kib_per_socket", "durable", "workerd", 4.0 / 67, 3},
		// workerd ran two rounds: ratios 2 and 4.
		{"ws_echo", "msgs_per_s", "durable", "workerd", 3, 2},
		{"alarm", "late_p99_ms", "durable", "workerd", 12.0 / 16, 1},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+tt.metric+"/"+tt.num, func(t *testing.T) {
			rs := d.ratios(tt.scenario, tt.metric, tt.num, tt.den)
			if len(rs) != tt.rounds {
				t.Errorf("ratios over %d rounds, want %d", len(rs), tt.rounds)
			}
			got, ok := median(rs)
			if !ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("median ratio = %v (%v), want %v", got, ok, tt.want)
			}
		})
	}
	if rs := d.ratios("ws_broadcast", "deliveries_per_s", "durable", "workerd"); len(rs) != 0 {
		t.Errorf("ratios of a missing scenario: %v", rs)
	}
}

func TestTarget_evaluate(t *testing.T) {
	tests := []struct {
		name     string
		keep     func(Result) bool
		verdicts []string // one per entry of targets, in order
	}{
		{"all servers", nil, []string{
			verdictMissed,      // hot c64: ratio 16 < 20 though durable's rps is 20,000
			verdictMet,         // hot c1 p50 ratio 0.3
			verdictMet,         // cold objects/s ratio 25
			verdictMet,         // memory per object ratio 0.667
			verdictMissed,      // capped memory per object ratio 0.357 > 0.333
			verdictMet,         // idle socket ratio 0.0597
			verdictNotMeasured, // broadcast: no data
			verdictMet,         // alarm p99 median 5 ms
		}},
		{"no workerd", func(r Result) bool { return r.Server != workerdServer }, []string{
			verdictNotMeasured, // the absolute half (20,000 ≥ 15,000) is met, the ratio is missing
			verdictNotMeasured,
			verdictNotMeasured,
			verdictNotMeasured,
			verdictNotMeasured,
			verdictNotMeasured,
			verdictNotMeasured,
			verdictMet,
		}},
		{"no data", func(Result) bool { return false }, []string{
			verdictNotMeasured, verdictNotMeasured, verdictNotMeasured, verdictNotMeasured,
			verdictNotMeasured, verdictNotMeasured, verdictNotMeasured, verdictNotMeasured,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustDataset(t, tt.keep)
			if len(tt.verdicts) != len(targets) {
				t.Fatalf("test lists %d verdicts for %d targets", len(tt.verdicts), len(targets))
			}
			for i, tg := range targets {
				measured, verdict := tg.evaluate(d)
				if verdict != tt.verdicts[i] {
					t.Errorf("%s: verdict %q (measured %s), want %q", tg.desc, verdict, measured, tt.verdicts[i])
				}
			}
		})
	}
}

func TestTarget_evaluateFailsOnAbsoluteCheck(t *testing.T) {
	// durable alone, below 15,000 req/s: the ratio is missing, but the
	// absolute check already fails, so the verdict is "no".
	d, err := readResults(strings.NewReader(
		`{"scenario":"hot_counter_c64","server":"durable","round":1,"metrics":{"rps":9000}}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	measured, verdict := targets[0].evaluate(d)
	if verdict != verdictMissed {
		t.Errorf("verdict %q (measured %s), want %q", verdict, measured, verdictMissed)
	}
	if !strings.Contains(measured, "not measured") || !strings.Contains(measured, "9000") {
		t.Errorf("measured = %q", measured)
	}
}

func TestWriteReport(t *testing.T) {
	var out bytes.Buffer
	if err := writeReport(&out, mustDataset(t, nil), "test report", "testdata/results.jsonl", "chart.svg"); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	for _, want := range []string{
		"# test report\n",
		"durable (3 rounds), workerd (3 rounds), durable-capped (3 rounds)",
		"![throughput and latency](chart.svg)",
		"## hot_counter_c64\n",
		"| metric | durable min / median / max | workerd min / median / max | durable ÷ workerd |",
		"| rps | 16000 / 20000 / 30000 | 800 / 1000 / 2000 | 16.0 |",
		"| durable min / median / max | workerd min / median / max | durable-capped min / median / max | durable ÷ workerd |",
		"| kib_per_object | 90 / 100 / 120 | 140 / 150 / 160 | 40 / 50 / 60 | 0.667 |",
		"| msgs_per_s | 100 / 200 / 300 | 50 / 50 / 50 | 3.00 |",
		"| hot counter, 64 connections: req/s | ≥ 20× workerd and ≥ 15,000 req/s | durable÷workerd 16.0×; durable rps 20000 | no |",
		"| broadcast deliveries/s | ≥ 5× workerd | not measured | not measured |",
		"| alarm lateness p99 (durable alone) | ≤ 10 ms | durable late_p99_ms 5 | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "No workerd results") {
		t.Error("report says workerd is missing")
	}
	if strings.Contains(md, "## ws_broadcast") {
		t.Error("report has a table for a scenario without data")
	}
	if strings.Index(md, "## hot_counter_c1\n") > strings.Index(md, "## alarm\n") {
		t.Error("scenarios are not in harness order")
	}
	if testing.Verbose() {
		t.Log("\n" + md)
	}
}

func TestWriteReport_noWorkerd(t *testing.T) {
	d := mustDataset(t, func(r Result) bool { return r.Server != workerdServer })
	var out bytes.Buffer
	if err := writeReport(&out, d, "durable alone", "x.jsonl", ""); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	for _, want := range []string{
		"No workerd results in this input",
		"| rps | 16000 / 20000 / 30000 |\n",
		"| metric | durable min / median / max | durable-capped min / median / max |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(md, "durable ÷ workerd |") {
		t.Error("ratio column without workerd")
	}
}

func TestReadResults_skipsBadLines(t *testing.T) {
	in := "not json\n\n" +
		`{"scenario":"cold","server":"durable","round":1,"metrics":{"objects":1}}` + "\n" +
		`{"server":"durable","round":1,"metrics":{}}` + "\n" +
		`{"scenario":"cold","server":"durable","round":1,"metrics":{"objects":2}}` + "\n"
	d, err := readResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.values("cold", "durable", "objects"); len(got) != 1 || got[0] != 2 {
		t.Errorf("values = %v, want [2] (the later line wins)", got)
	}
}

func TestWriteChart(t *testing.T) {
	tests := []struct {
		name      string
		keep      func(Result) bool
		minShapes int
	}{
		// 2 servers × 10 bars, whiskers, axes and legend.
		{"all servers", nil, 40},
		{"no workerd", func(r Result) bool { return r.Server != workerdServer }, 15},
		{"no data", func(Result) bool { return false }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chart.svg")
			if err := writeChart(path, mustDataset(t, tt.keep), "test"); err != nil {
				t.Fatal(err)
			}
			svg, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := string(svg)
			if !strings.HasPrefix(s, "<?xml") || !strings.Contains(s, "</svg>") {
				t.Fatalf("not an SVG document: %.200s", s)
			}
			shapes := strings.Count(s, "<path") + strings.Count(s, "<rect")
			if shapes < tt.minShapes {
				t.Errorf("%d <path/<rect elements, want at least %d", shapes, tt.minShapes)
			}
		})
	}
}

func TestWriteChart_deterministic(t *testing.T) {
	d := mustDataset(t, nil)
	dir := t.TempDir()
	var svgs []string
	for _, name := range []string{"a.svg", "b.svg"} {
		path := filepath.Join(dir, name)
		if err := writeChart(path, d, "test"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		svgs = append(svgs, string(b))
	}
	if svgs[0] != svgs[1] {
		t.Error("the same input gave two different charts")
	}
}

func TestReport_files(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out") // report creates it
	md, chart := filepath.Join(dir, "report.md"), filepath.Join(dir, "img", "chart.svg")
	if err := report("testdata/results.jsonl", md, chart, "files"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "](img/chart.svg)") {
		t.Error("report does not link the chart by its relative path")
	}
	if _, err := os.Stat(chart); err != nil {
		t.Error(err)
	}
}
