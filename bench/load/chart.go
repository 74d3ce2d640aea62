package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// A chartBar is one group of bars: a metric of a scenario, one bar per server.
type chartBar struct {
	label, scenario, metric string
}

var (
	throughputBars = []chartBar{
		{"HTTP alone\nc=64 req/s", "http_ceiling_c64", "rps"},
		{"counter\nc=1 req/s", "hot_counter_c1", "rps"},
		{"counter\nc=64 req/s", "hot_counter_c64", "rps"},
		{"kv counter\nc=64 req/s", "hot_kv_c64", "rps"},
		{"cold\nobjects/s", "cold", "objects_per_s"},
		{"ws echo\nmsgs/s", "ws_echo", "msgs_per_s"},
		{"broadcast\ndeliveries/s", "ws_broadcast", "deliveries_per_s"},
	}
	latencyBars = []chartBar{
		{"counter c=1 p50", "hot_counter_c1", "p50_ms"},
		{"counter c=1 p99", "hot_counter_c1", "p99_ms"},
		{"counter c=64 p50", "hot_counter_c64", "p50_ms"},
		{"counter c=64 p99", "hot_counter_c64", "p99_ms"},
		{"alarm lateness p99", "alarm", "late_p99_ms"},
	}
)

const (
	chartWidth  = 9 * vg.Inch
	chartHeight = 10 * vg.Inch
)

// writeChart writes a chart with two panels, throughput above latency,
// each on a log scale: bars are medians over rounds, whiskers span min to
// max. SVG, or PNG when path ends in .png.
func writeChart(path string, d *dataset, title string) error {
	top := barPanel(d, throughputBars, title+": throughput (log scale)", "per second")
	bottom := barPanel(d, latencyBars, "latency (log scale)", "milliseconds")
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	} = vgsvg.New(chartWidth, chartHeight)
	if strings.HasSuffix(path, ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.New(chartWidth, chartHeight)}
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadY: vg.Millimeter * 8}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, draw.New(c))
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = c.WriteTo(f)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("write chart %s: %w", path, err)
	}
	return nil
}

// barPanel draws one group of bars per entry of bars and one bar per server
// that has data for any of them.
func barPanel(d *dataset, bars []chartBar, title, unit string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	labels := make([]string, len(bars))
	for i, b := range bars {
		labels[i] = b.label
	}
	p.NominalX(labels...)
	p.Legend.Top = true

	// spreads[server][i] is the spread of bars[i]; servers without data are left out.
	var servers []string
	spreads := map[string][]*spread{}
	for _, s := range d.servers("") {
		row := make([]*spread, len(bars))
		has := false
		for i, b := range bars {
			if sp, ok := spreadOf(d.values(b.scenario, s, b.metric)); ok && sp.median > 0 {
				row[i], has = &sp, true
			}
		}
		if has {
			servers = append(servers, s)
			spreads[s] = row
		}
	}
	scale := newLogScale(spreads)
	p.Y.Min, p.Y.Max = 0, scale.top
	p.Y.Tick.Marker = scale
	if len(servers) == 0 {
		p.Title.Text += ": no data"
		return p
	}

	width := vg.Length(0.7*float64(chartWidth)/float64(len(bars))) / vg.Length(len(servers))
	for j, s := range servers {
		heights := make(plotter.Values, len(bars))
		w := &whiskers{offset: (vg.Length(j) - vg.Length(len(servers)-1)/2) * width, cap: width / 4}
		for i, sp := range spreads[s] {
			w.lo = append(w.lo, math.NaN())
			w.hi = append(w.hi, math.NaN())
			if sp == nil {
				continue
			}
			heights[i] = scale.height(sp.median)
			w.lo[i], w.hi[i] = scale.height(sp.min), scale.height(sp.max)
		}
		bc, err := plotter.NewBarChart(heights, width)
		if err != nil { // only for a non-positive width, which cannot happen here
			logf("chart: %v", err)
			continue
		}
		bc.Color = plotutil.Color(j)
		bc.Offset = w.offset
		bc.LineStyle.Width = vg.Points(0.5)
		w.style = draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
		p.Add(bc, w)
		p.Legend.Add(s, bc)
	}
	return p
}

// legendRoom is the headroom, in decades, kept above the tallest bar so
// that the legend does not cover it.
const legendRoom = 0.4

// logScale maps values to bar heights in decades above floor, a power of
// ten below the smallest value drawn, and labels the axis with the values.
type logScale struct {
	floor float64
	top   float64 // height of the axis: whole decades above the tallest bar
}

func newLogScale(spreads map[string][]*spread) logScale {
	lo, hi := math.Inf(1), 0.0
	for _, row := range spreads {
		for _, sp := range row {
			if sp == nil {
				continue
			}
			if sp.min > 0 {
				lo = min(lo, sp.min)
			}
			lo = min(lo, sp.median)
			hi = max(hi, sp.max, sp.median)
		}
	}
	if math.IsInf(lo, 1) {
		return logScale{floor: 1, top: 1}
	}
	s := logScale{floor: math.Pow(10, math.Floor(math.Log10(lo)))}
	if lo < 2*s.floor { // keep the shortest bar visible
		s.floor /= 10
	}
	s.top = max(1, math.Ceil(s.height(hi)+legendRoom))
	return s
}

// height is the bar height of v: 0 for values at or below the floor.
func (s logScale) height(v float64) float64 {
	if v <= s.floor {
		return 0
	}
	return math.Log10(v / s.floor)
}

// Ticks implements plot.Ticker with one labelled tick per decade.
func (s logScale) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for k := math.Ceil(min); k <= max; k++ {
		ticks = append(ticks, plot.Tick{Value: k, Label: fmtNum(s.floor * math.Pow(10, k))})
	}
	return ticks
}

// whiskers draws a vertical line from lo[i] to hi[i] at bar i, shifted
// sideways by offset like the bars it belongs to. NaN marks no whisker.
type whiskers struct {
	lo, hi []float64
	offset vg.Length
	cap    vg.Length
	style  draw.LineStyle
}

// Plot implements plot.Plotter.
func (w *whiskers) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i := range w.lo {
		if math.IsNaN(w.lo[i]) || math.IsNaN(w.hi[i]) {
			continue
		}
		x := trX(float64(i)) + w.offset
		lo, hi := trY(w.lo[i]), trY(w.hi[i])
		c.StrokeLine2(w.style, x, lo, x, hi)
		c.StrokeLine2(w.style, x-w.cap, lo, x+w.cap, lo)
		c.StrokeLine2(w.style, x-w.cap, hi, x+w.cap, hi)
	}
}
