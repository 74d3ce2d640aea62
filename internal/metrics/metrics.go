// Package metrics holds the runtime's counters and histograms: plain
// atomics that the hot path updates without a lock or an allocation, read
// by the Prometheus exporter (internal/admin) only when it is scraped.
// Nothing here knows Prometheus; the exporter maps these values to it.
package metrics

import (
	"sync/atomic"
	"time"
)

// Stripes is the number of stripes of a counter or histogram. Hot
// counters are updated from every core at once; one cache line per stripe,
// chosen by the object (StripeOf), keeps the cores from fighting over one
// line (measured: one shared line cost 12% of a call without storage).
const Stripes = 8

type stripe struct {
	v atomic.Uint64
	_ [56]byte // one cache line each
}

// StripeOf picks the stripe of an object from its ID string.
func StripeOf(id string) uint8 {
	if id == "" {
		return 0
	}
	return id[len(id)-1] % Stripes
}

// Counter is a monotonic count.
type Counter struct{ s [Stripes]stripe }

// Inc adds one (stripe 0: for rare events).
func (c *Counter) Inc() { c.s[0].v.Add(1) }

// IncAt adds one on stripe k (for events of every turn).
func (c *Counter) IncAt(k uint8) { c.s[k%Stripes].v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.s[0].v.Add(n) }

// AddAt adds n on stripe k.
func (c *Counter) AddAt(k uint8, n uint64) { c.s[k%Stripes].v.Add(n) }

// Load returns the count.
func (c *Counter) Load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].v.Load()
	}
	return n
}

// Gauge is a value that goes up and down, striped as Counter.
type Gauge struct{ s [Stripes]stripe }

// AddAt adds n (which may be negative) on stripe k.
func (g *Gauge) AddAt(k uint8, n int64) { g.s[k%Stripes].v.Add(uint64(n)) }

// Load returns the value.
func (g *Gauge) Load() int64 {
	var n uint64
	for i := range g.s {
		n += g.s[i].v.Load() // two's complement: the sum of the stripes is exact
	}
	return int64(n)
}

// Histogram counts observations in fixed buckets (cumulative upper bounds,
// as Prometheus has them) and keeps their sum. Values are integers in the
// histogram's unit (nanoseconds for durations, plain counts for sizes):
// an observation is two atomic adds on its stripe, no compare-and-swap.
type Histogram struct {
	unit    float64 // the exported value of 1 (1e-9: nanoseconds as seconds)
	bounds  []int64
	stripes [Stripes]histStripe
}

type histStripe struct {
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64
	_      [32]byte
}

// NewHistogram returns a histogram of integer values with the given
// increasing upper bounds, exported as value×unit.
func NewHistogram(unit float64, bounds []int64) *Histogram {
	h := &Histogram{unit: unit, bounds: bounds}
	for i := range h.stripes {
		h.stripes[i].counts = make([]atomic.Uint64, len(bounds)+1)
	}
	return h
}

// Observe records v (stripe 0).
func (h *Histogram) Observe(v int64) { h.ObserveAt(0, v) }

// ObserveAt records v on stripe k.
func (h *Histogram) ObserveAt(k uint8, v int64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	st := &h.stripes[k%Stripes]
	st.counts[i].Add(1)
	st.sum.Add(v)
}

// ObserveDuration records d (for a histogram in nanoseconds), stripe 0.
func (h *Histogram) ObserveDuration(d time.Duration) { h.ObserveAt(0, int64(d)) }

// Snapshot is a histogram's state at one moment, in exported units.
type Snapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64 // upper bound → cumulative count
}

// Snapshot reads the histogram. Concurrent observations may land in the
// count and not yet in the sum: a scrape is a moment, not a transaction.
func (h *Histogram) Snapshot() Snapshot {
	s := Snapshot{Buckets: make(map[float64]uint64, len(h.bounds))}
	per := make([]uint64, len(h.bounds)+1)
	var sum int64
	for k := range h.stripes {
		st := &h.stripes[k]
		for i := range per {
			per[i] += st.counts[i].Load()
		}
		sum += st.sum.Load()
	}
	var cum uint64
	for i, b := range h.bounds {
		cum += per[i]
		s.Buckets[float64(b)*h.unit] = cum
	}
	s.Count = cum + per[len(h.bounds)]
	s.Sum = float64(sum) * h.unit
	return s
}

// Bucket layouts.
var (
	// Nanos spans 50 µs to 10 s, in nanoseconds (exported as seconds).
	Nanos = []int64{50e3, 100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1e9, 2.5e9, 10e9}
	// Sizes spans 1 to 1,024 (turns per batch, batches per sync).
	Sizes = []int64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// NewSeconds returns a duration histogram (nanoseconds, exported as
// seconds).
func NewSeconds() *Histogram { return NewHistogram(1e-9, Nanos) }

// NewSizes returns a histogram of counts.
func NewSizes() *Histogram { return NewHistogram(1, Sizes) }

// Turn error kinds, the label values of failed turns.
const (
	KindError     = "error"     // the method or handler returned an error
	KindPanic     = "panic"     // it panicked or called Abort: the instance reset
	KindReset     = "reset"     // the instance was reset under it (fence, failed sync)
	KindCancelled = "cancelled" // the caller's context ended
	KindOther     = "other"
)

// Kinds lists the turn error kinds in a fixed order.
var Kinds = []string{KindError, KindPanic, KindReset, KindCancelled, KindOther}

// Namespace is one namespace's counters. Its RPC map is built before the
// namespace is used and only read afterwards.
type Namespace struct {
	Name string

	Activations Counter    // objects made live
	Evictions   Counter    // instances retired (idle or hibernating)
	TurnSeconds *Histogram // turns run and their durations, from start to reply
	TurnErrors  map[string]*Counter
	Overloaded  Counter             // calls refused with a full mailbox
	RPC         map[string]*Counter // calls by method name

	AlarmsSet     Counter    // SetAlarm calls that took effect in the index
	AlarmsFired   Counter    // alarm handlers run
	AlarmsRetried Counter    // alarm handlers that failed and were rescheduled
	AlarmsDropped Counter    // alarms given up after the last retry
	AlarmLateness *Histogram // seconds from the alarm's time to its handler's start

	WSMessagesIn  Counter // WebSocket messages delivered to the object
	WSMessagesOut Counter // WebSocket messages the object sent

	OutputsHeld Gauge   // replies (RPC results, HTTP responses) waiting for the writes they depend on to be durable
	RowsRead    Counter // rows read by SQL statements and KV calls (the platform's billing unit)
	RowsWritten Counter // rows written by them
}

// NewNamespace returns the counters of a namespace whose class has the
// given RPC method names.
func NewNamespace(name string, methods []string) *Namespace {
	n := &Namespace{
		Name:          name,
		TurnSeconds:   NewSeconds(),
		AlarmLateness: NewSeconds(),
		TurnErrors:    make(map[string]*Counter, len(Kinds)),
		RPC:           make(map[string]*Counter, len(methods)),
	}
	for _, k := range Kinds {
		n.TurnErrors[k] = new(Counter)
	}
	for _, m := range methods {
		n.RPC[m] = new(Counter)
	}
	return n
}

// Store is the storage engine's node-wide counters.
type Store struct {
	TurnsPerBatch  *Histogram // turns committed together in one batch
	BatchesPerSync *Histogram // batches one sync round made durable
	TurnsPerSync   *Histogram // turns one sync round made durable
	SyncSeconds    *Histogram // a sync round's duration
	Commits        Counter    // batches committed
	SyncErrors     Counter
}

// NewStore returns the storage engine's counters.
func NewStore() *Store {
	return &Store{
		TurnsPerBatch:  NewSizes(),
		BatchesPerSync: NewSizes(),
		TurnsPerSync:   NewSizes(),
		SyncSeconds:    NewSeconds(),
	}
}
