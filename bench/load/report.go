package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// runReport is the report subcommand: it reads result lines and writes the
// markdown report and, with -chart, the SVG chart.
func runReport(args []string) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "results.jsonl", `result lines to read ("-": stdin)`)
	md := fs.String("md", "-", `markdown report to write ("-": stdout)`)
	chart := fs.String("chart", "", "SVG chart to write: throughput and latency panels (empty: no chart)")
	title := fs.String("title", "durable vs workerd", "title of the report")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		return flagExit(fmt.Errorf("report: unexpected arguments %q", fs.Args()))
	}
	if err := report(*in, *md, *chart, *title); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		return 1
	}
	return 0
}

func report(in, md, chart, title string) error {
	r := io.Reader(os.Stdin)
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	d, err := readResults(r)
	if err != nil {
		return err
	}
	chartLink := ""
	if chart != "" {
		if err := writeChart(chart, d, title); err != nil {
			return err
		}
		chartLink = chart
		if md != "-" {
			if rel, err := filepath.Rel(filepath.Dir(md), chart); err == nil {
				chartLink = rel
			}
		}
	}
	if md == "-" {
		return writeReport(os.Stdout, d, title, in, chartLink)
	}
	if err := os.MkdirAll(filepath.Dir(md), 0o755); err != nil {
		return err
	}
	f, err := os.Create(md)
	if err != nil {
		return err
	}
	err = writeReport(f, d, title, in, chartLink)
	return errors.Join(err, f.Close())
}

// writeReport writes the markdown report: one table per scenario, then the
// targets. source names the input; chart, if not empty, is linked.
func writeReport(w io.Writer, d *dataset, title, source, chart string) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# %s\n\n", title)
	servers := d.servers("")
	fmt.Fprintf(b, "%d results from `%s`; servers: %s.\n\n", d.lines, source, describeServers(d, servers))
	if !slices.Contains(servers, workerdServer) {
		fmt.Fprint(b, "> **No workerd results in this input** (workerd could not be installed or was not run).\n"+
			"> The tables show the servers that did run; every target that compares with workerd reads \"not measured\".\n\n")
	}
	fmt.Fprint(b, "Each cell is min / median / max over rounds. A ratio is the median over rounds of "+
		"durable ÷ workerd, each taken within one round (only rounds where both ran).\n\n")
	if chart != "" {
		fmt.Fprintf(b, "![throughput and latency](%s)\n\n", chart)
	}

	// The verdicts first, the tables they come from after.
	fmt.Fprint(b, "## Targets\n\n")
	fmt.Fprint(b, "| target | goal | measured | met |\n|---|---|---|---|\n")
	for _, t := range targets {
		measured, verdict := t.evaluate(d)
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", t.desc, t.goal, measured, verdict)
	}
	fmt.Fprint(b, "\n")
	for _, sc := range d.scenarios() {
		writeScenario(b, d, sc)
	}
	return b.Flush()
}

// describeServers lists servers with the number of distinct rounds each ran.
func describeServers(d *dataset, servers []string) string {
	if len(servers) == 0 {
		return "none"
	}
	var parts []string
	for _, s := range servers {
		rounds := map[int]bool{}
		for _, sc := range d.scenarios() {
			for _, r := range d.rounds(sc, s) {
				rounds[r] = true
			}
		}
		parts = append(parts, fmt.Sprintf("%s (%d rounds)", s, len(rounds)))
	}
	return strings.Join(parts, ", ")
}

// writeScenario writes the table of one scenario: a row per metric, a
// column per server, and the durable ÷ workerd ratio when both ran.
func writeScenario(w io.Writer, d *dataset, scenario string) {
	servers := d.servers(scenario)
	withRatio := slices.Contains(servers, durableServer) && slices.Contains(servers, workerdServer)
	fmt.Fprintf(w, "## %s\n\n| metric |", scenario)
	for _, s := range servers {
		fmt.Fprintf(w, " %s min / median / max |", s)
	}
	if withRatio {
		fmt.Fprint(w, " durable ÷ workerd |")
	}
	fmt.Fprint(w, "\n|---|")
	for range servers {
		fmt.Fprint(w, "---|")
	}
	if withRatio {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, metric := range d.metricNames(scenario) {
		fmt.Fprintf(w, "| %s |", metric)
		for _, s := range servers {
			fmt.Fprintf(w, " %s |", fmtSpread(d.values(scenario, s, metric)))
		}
		if withRatio {
			cell := "–"
			if v, ok := median(d.ratios(scenario, metric, durableServer, workerdServer)); ok {
				cell = fmtRatio(v)
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

func fmtSpread(xs []float64) string {
	s, ok := spreadOf(xs)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", fmtNum(s.min), fmtNum(s.median), fmtNum(s.max))
}

// fmtNum formats a measured value: integers as integers, values from 100 up
// to one decimal, from 1 up to two, smaller ones to three significant digits.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
	case a >= 1:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// fmtRatio formats a ratio with about three significant digits.
func fmtRatio(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
