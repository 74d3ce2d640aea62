// Package host runs objects: it joins the mailbox and turn token
// (internal/actor), the storage engine (internal/store), the output gate
// (internal/gate) and the cluster seams (internal/route, store.CommitLog).
//
// Each live object is an Activation with one driver goroutine. Activation
// goes Placement.Acquire → CommitLog.Open → restore → replay → serve; the
// driver runs the mailbox's events as turns, one at a time, commits when
// the mailbox is empty, and retires the object after IdleTimeout without
// events. Calls made from inside a turn suspend it (a durability point) so
// that a call back into the object on the same call chain can run.
package host

import (
	"context"
	"errors"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durable-go/durable/internal/alarm"
	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/tracing"
)

// Config configures a Host. Every field must be set (the root package
// applies the defaults).
type Config struct {
	Store       *store.Store
	Clock       clock.Clock
	Logger      *slog.Logger
	MailboxSize int
	IdleTimeout time.Duration
	Placement   route.Placement
	Transport   route.Transport
	CommitLog   store.CommitLog
	Snapshots   store.SnapshotStore
	// AlarmRetryBase is the first backoff of a failing alarm handler
	// (doubling, MaxAlarmRetries retries).
	AlarmRetryBase time.Duration
	// HibernateAfter replaces IdleTimeout for an object with WebSockets
	// (Sockets reports how many it has; nil: none ever).
	HibernateAfter time.Duration
	Sockets        func(route.ObjectID) int
	// OnRetire, if set, is told when an activation let go of its object.
	OnRetire func(route.ObjectID)
	// SlowTurn: a turn longer than this is logged (≤ 0: never).
	SlowTurn time.Duration
	// Tracer makes the spans of calls and turns (nil: tracing off).
	Tracer *tracing.Tracer
}

// Limits of the platform the host enforces.
const (
	BlockConcurrencyLimit = 30 * time.Second // BlockConcurrencyWhile's overrun
	WaitUntilLimit        = 15 * time.Minute // one WaitUntil function
)

// Class is a namespace's class as the host sees it.
type Class struct {
	Name string
	// New constructs an instance. It runs inside the first turn, with the
	// activation's storage usable.
	New func(ctx context.Context, a *Activation) (any, error)
	// Alarm runs the instance's alarm handler; nil if the class has none.
	Alarm func(ctx context.Context, inst any, info AlarmInfo) error
	// Metrics are the namespace's counters (never nil once defined).
	Metrics *metrics.Namespace

	refused         atomic.Int64 // calls refused since the last overload log line
	lastOverloadLog atomic.Int64 // when it was written (Unix ns)
}

// AlarmInfo tells an alarm handler which attempt this is.
type AlarmInfo struct {
	RetryCount int
	IsRetry    bool
}

// Host owns every activation of one runtime.
type Host struct {
	cfg Config
	log *slog.Logger

	usageMu sync.Mutex
	usage   map[route.ObjectID]Usage // guarded by usageMu; what retired activations used

	mu       sync.Mutex
	paused   map[route.ObjectID]bool          // guarded by mu; objects an operator paused
	classes  map[string]*Class                // guarded by mu
	live     map[route.ObjectID]*Activation   // guarded by mu
	retiring map[route.ObjectID]chan struct{} // guarded by mu; closed when the old activation let go of its storage
	closed   bool                             // guarded by mu

	alarms  *alarm.Scheduler
	index   *store.Object  // the node database holding the alarm index
	drivers sync.WaitGroup // one per activation goroutine
	chains  atomic.Uint64  // call chain numbers
	liveN   atomic.Int64   // live activations
}

// New returns a host and starts serving its transport.
func New(cfg Config) (*Host, error) {
	h := &Host{
		cfg:      cfg,
		log:      cfg.Logger,
		classes:  make(map[string]*Class),
		live:     make(map[route.ObjectID]*Activation),
		retiring: make(map[route.ObjectID]chan struct{}),
	}
	if err := cfg.Transport.Serve(context.Background(), h.serve); err != nil {
		return nil, err
	}
	idx, err := cfg.Store.AcquireNode("runtime")
	if err != nil {
		return nil, err
	}
	h.index = idx
	h.alarms, err = alarm.Open(alarm.Config{Index: idx, Clock: cfg.Clock, Log: cfg.Logger, Fire: h.fireAlarm})
	if err != nil {
		idx.Release()
		return nil, err
	}
	return h, nil
}

// Define registers a class. It returns false if the name is taken.
func (h *Host) Define(c *Class) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.classes[c.Name]; ok {
		return false
	}
	h.classes[c.Name] = c
	h.alarms.Defined(c.Name) // alarms that came due before Define fire now
	return true
}

// Store returns the host's storage engine.
func (h *Host) Store() *store.Store { return h.cfg.Store }

// Logger returns the host's logger.
func (h *Host) Logger() *slog.Logger { return h.log }

// Clock returns the host's clock.
func (h *Host) Clock() clock.Clock { return h.cfg.Clock }

// Live reports the number of live activations.
func (h *Host) Live() int64 { return h.liveN.Load() }

// ErrClosed wraps errs.ErrClosed for calls on a closed host.
var ErrClosed = fmt.Errorf("durable: the runtime is closed: %w", errs.ErrClosed)

// Close stops the host: queued calls fail with ErrClosed, running turns
// finish and commit, then the drivers exit. If ctx ends first, the
// activations are fenced (their storage calls fail, running statements are
// interrupted) and Close returns ctx's error; the caller closes the store
// either way.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	acts := make([]*Activation, 0, len(h.live))
	for _, a := range h.live {
		acts = append(acts, a)
	}
	h.mu.Unlock()
	for _, a := range acts {
		a.stop()
	}
	done := make(chan struct{})
	go func() { h.drivers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		// Turns still running lose their storage: every further call
		// fails, a running statement is interrupted, held outputs fail.
		for _, a := range acts {
			a.kill(errors.New("the runtime closed before the turn finished"))
		}
		err = ctx.Err()
	}
	h.alarms.Close()
	h.index.Release()
	return err
}

// newChain returns a fresh call chain number.
func (h *Host) newChain() uint64 { return h.chains.Add(1) }

// NamespaceLoad is what the live activations of one namespace hold now.
type NamespaceLoad struct {
	Live    int64 // live instances
	Mailbox int64 // events waiting in their mailboxes
}

// Load returns the live instances and queued events per namespace. It
// walks the live activations: meant for a metrics scrape, not a hot path.
func (h *Host) Load() map[string]NamespaceLoad {
	h.mu.Lock()
	acts := make([]*Activation, 0, len(h.live))
	for _, a := range h.live {
		acts = append(acts, a)
	}
	h.mu.Unlock()
	out := make(map[string]NamespaceLoad)
	for _, a := range acts {
		l := out[a.id.Namespace]
		l.Live++
		l.Mailbox += int64(a.mb.Len())
		out[a.id.Namespace] = l
	}
	return out
}

// ObjectLoad is what the host knows of one object now.
type ObjectLoad struct {
	Live    bool
	Mailbox int64
	Name    string // the name it was addressed by, if its instance knows it
}

// Object returns what the host knows of an object now.
func (h *Host) Object(id route.ObjectID) ObjectLoad {
	h.mu.Lock()
	a := h.live[id]
	h.mu.Unlock()
	if a == nil {
		return ObjectLoad{}
	}
	a.smu.Lock()
	name := a.name
	a.smu.Unlock()
	return ObjectLoad{Live: true, Mailbox: int64(a.mb.Len()), Name: name}
}

// Usage is what an object used, in the platform's billing units.
type Usage struct {
	Requests, WallNanos, RowsRead, RowsWritten int64
}

// useCounters is an activation's usage since the last TakeUsage: only the
// object's goroutine adds, TakeUsage swaps.
type useCounters struct {
	requests, wall, rowsRead, rowsWritten atomic.Int64
}

func (u *useCounters) take() Usage {
	return Usage{Requests: u.requests.Swap(0), WallNanos: u.wall.Swap(0),
		RowsRead: u.rowsRead.Swap(0), RowsWritten: u.rowsWritten.Swap(0)}
}

func (u Usage) zero() bool { return u == Usage{} }

// foldUsage keeps what a retired activation used until the next TakeUsage.
func (h *Host) foldUsage(a *Activation) {
	if u := a.use.take(); !u.zero() {
		h.KeepUsage(map[route.ObjectID]Usage{a.id: u})
	}
}

func (u *Usage) add(o Usage) {
	u.Requests += o.Requests
	u.WallNanos += o.WallNanos
	u.RowsRead += o.RowsRead
	u.RowsWritten += o.RowsWritten
}

// TakeUsage returns what every object used since the last call, and starts
// counting again.
func (h *Host) TakeUsage() map[route.ObjectID]Usage {
	h.mu.Lock()
	acts := make([]*Activation, 0, len(h.live))
	for _, a := range h.live {
		acts = append(acts, a)
	}
	h.mu.Unlock()
	h.usageMu.Lock()
	out := h.usage
	h.usage = nil
	h.usageMu.Unlock()
	if out == nil {
		out = map[route.ObjectID]Usage{}
	}
	for _, a := range acts {
		u := a.use.take()
		if u.zero() {
			continue
		}
		p := out[a.id]
		p.add(u)
		out[a.id] = p
	}
	return out
}

// KeepUsage gives back counts a flush could not write, for the next one.
func (h *Host) KeepUsage(took map[route.ObjectID]Usage) {
	h.usageMu.Lock()
	defer h.usageMu.Unlock()
	if h.usage == nil {
		h.usage = map[route.ObjectID]Usage{}
	}
	for id, u := range took {
		p := h.usage[id]
		p.add(u)
		h.usage[id] = p
	}
}

// AlarmTimes returns the alarm index's times (Unix ms) of the objects of
// ns with IDs from first to last: an operator's listing.
func (h *Host) AlarmTimes(ctx context.Context, ns, first, last string) (map[string]int64, error) {
	return h.alarms.Lookup(ctx, ns, first, last)
}
