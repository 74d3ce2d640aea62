package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/hooks"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/metrics"
	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/tracing"
	"github.com/durable-go/durable/internal/usage"
	"github.com/durable-go/durable/internal/ws"
)

// Defaults of Config's zero values.
const (
	DefaultIdleTimeout            = 70 * time.Second
	DefaultHibernateAfter         = 10 * time.Second
	DefaultMailboxSize            = 1024
	DefaultMaxDatabaseSize        = 10_000_000_000
	DefaultMaxWebSocketsPerObject = 32768
	DefaultMaxWebSocketMessage    = 32 << 20
	DefaultAlarmRetryBase         = 2 * time.Second
	DefaultSlowTurn               = time.Second
)

// Config configures a Runtime. The zero value of every field means its
// default.
type Config struct {
	// Dir is the data directory. "" means a fresh temporary directory,
	// removed on Close.
	Dir string
	// Secret is the key IDs are derived from. Empty: one is created once
	// and kept in Dir. Nodes of one cluster must share it; a Secret that
	// differs from the one kept in Dir is refused.
	Secret []byte
	// IdleTimeout evicts an instance idle this long (70 s).
	IdleTimeout time.Duration
	// HibernateAfter evicts an instance whose only activity is WebSockets
	// (10 s).
	HibernateAfter time.Duration
	// MailboxSize is how many calls may wait per object (1,024); beyond
	// it calls fail at once with ErrOverloaded.
	MailboxSize int
	// MaxOpenDatabases bounds the open SQLite connections; least recently
	// used ones beyond it are closed and reopened on next use. Default: a
	// quarter of the process's open-files limit (each open database holds
	// 2–3 file descriptors), 5,000 where the limit is 20,000.
	MaxOpenDatabases int
	// MaxDatabaseSize bounds each object's database (10,000,000,000 bytes).
	MaxDatabaseSize int64
	// MaxWebSocketsPerObject bounds the WebSockets one object accepts
	// (32,768).
	MaxWebSocketsPerObject int
	// MaxWebSocketMessage bounds an incoming WebSocket message (32 MiB).
	MaxWebSocketMessage int64
	// AlarmRetryBase is the first backoff of a failing alarm (2 s,
	// doubling, 6 retries).
	AlarmRetryBase time.Duration
	// SlowTurn logs a warning for every turn that takes longer (1 s),
	// with its namespace, object ID and duration; negative: never.
	SlowTurn time.Duration
	// Clock drives every timer of the runtime (nil: the machine's clock).
	Clock Clock
	// Logger receives the runtime's logs (nil: slog.Default()).
	Logger *slog.Logger
	// TracerProvider receives OpenTelemetry spans of every call and turn
	// (RPC, fetch, alarm, WebSocket event) with the namespace and object
	// ID, parented on the caller's span in the call's context (so a chain
	// of calls is one trace), and the output gate's wait with the batch's
	// commit and sync inside. nil: tracing off, at the cost of a nil check.
	TracerProvider trace.TracerProvider
}

// setDefaults fills the zero values and checks the rest.
func (c *Config) setDefaults() error {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HibernateAfter == 0 {
		c.HibernateAfter = DefaultHibernateAfter
	}
	if c.MailboxSize == 0 {
		c.MailboxSize = DefaultMailboxSize
	}
	if c.MaxOpenDatabases == 0 {
		c.MaxOpenDatabases = defaultMaxOpenDatabases()
	}
	if c.MaxDatabaseSize == 0 {
		c.MaxDatabaseSize = DefaultMaxDatabaseSize
	}
	if c.MaxWebSocketsPerObject == 0 {
		c.MaxWebSocketsPerObject = DefaultMaxWebSocketsPerObject
	}
	if c.MaxWebSocketMessage == 0 {
		c.MaxWebSocketMessage = DefaultMaxWebSocketMessage
	}
	if c.AlarmRetryBase == 0 {
		c.AlarmRetryBase = DefaultAlarmRetryBase
	}
	if c.SlowTurn == 0 {
		c.SlowTurn = DefaultSlowTurn
	}
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for name, v := range map[string]int64{
		"IdleTimeout": int64(c.IdleTimeout), "HibernateAfter": int64(c.HibernateAfter),
		"MailboxSize": int64(c.MailboxSize), "MaxOpenDatabases": int64(c.MaxOpenDatabases),
		"MaxDatabaseSize": c.MaxDatabaseSize, "MaxWebSocketsPerObject": int64(c.MaxWebSocketsPerObject),
		"MaxWebSocketMessage": c.MaxWebSocketMessage, "AlarmRetryBase": int64(c.AlarmRetryBase),
	} {
		if v < 0 {
			return fmt.Errorf("durable: Config.%s is negative", name)
		}
	}
	return nil
}

// defaultMaxOpenDatabases is a quarter of the open-files limit.
func defaultMaxOpenDatabases() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return store.DefaultMaxOpenDatabases
	}
	n := lim.Cur / 4
	if n < 16 {
		n = 16
	}
	if n > 1<<20 {
		n = 1 << 20
	}
	return int(n)
}

// Runtime hosts objects: it owns the data directory, the storage engine
// and every live object. Open one per data directory; Close it when done.
type Runtime struct {
	cfg    Config
	tmpDir bool
	lock   *os.File
	secret []byte
	store  *store.Store
	host   *host.Host
	hub    *ws.Hub

	storeMetrics *metrics.Store
	tracer       *tracing.Tracer // nil: tracing off
	nsMetrics    sync.Map        // namespace name → *metrics.Namespace
	noMetrics    atomic.Bool     // hooks.DisableMetrics: namespaces defined next count nothing
	dbBytes      dbBytes

	usage                *usage.Book
	usageStop, usageDone chan struct{}
	usageMu              sync.Mutex // one flush at a time; Close's is the last
	usageClosed          bool       // guarded by usageMu

	closeOnce sync.Once
	closeErr  error
}

// Open opens a Runtime on cfg.Dir, creating the directory if needed. It
// fails with ErrLocked if another open Runtime, in this process or another,
// holds the directory.
func Open(cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg}
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "durable-*")
		if err != nil {
			return nil, fmt.Errorf("durable: temporary directory: %w", err)
		}
		rt.cfg.Dir, rt.tmpDir = d, true
	}
	abs, err := filepath.Abs(rt.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("durable: %w", err)
	}
	rt.cfg.Dir = abs
	fail := func(err error) (*Runtime, error) {
		if rt.lock != nil {
			rt.lock.Close()
		}
		if rt.tmpDir {
			os.RemoveAll(rt.cfg.Dir)
		}
		return nil, err
	}
	if rt.lock, err = host.LockDir(abs); err != nil {
		return fail(err)
	}
	if rt.secret, err = host.LoadSecret(abs, cfg.Secret); err != nil {
		return fail(err)
	}
	rt.storeMetrics = metrics.NewStore()
	rt.tracer = tracing.New(cfg.TracerProvider)
	rt.store, err = store.Open(store.Config{
		Dir:              abs,
		MaxOpenDatabases: cfg.MaxOpenDatabases,
		MaxDatabaseSize:  cfg.MaxDatabaseSize,
		Logger:           cfg.Logger,
		Metrics:          rt.storeMetrics,
		Timings:          cfg.TracerProvider != nil,
	})
	if err != nil {
		return fail(err)
	}
	rt.hub, err = ws.New(ws.Config{
		Sink:        wsEvents{rt: rt},
		Logger:      cfg.Logger,
		MaxMessage:  cfg.MaxWebSocketMessage,
		MaxPerGroup: cfg.MaxWebSocketsPerObject,
		Now:         cfg.Clock.Now,
		// rt.host is set below, before any socket can exist.
		Live: func(id route.ObjectID) bool { return rt.host.IsLive(id) },
	})
	if err != nil {
		rt.store.Close()
		return fail(err)
	}
	hub := rt.hub
	rt.host, err = host.New(host.Config{
		Store:       rt.store,
		Clock:       cfg.Clock,
		Logger:      cfg.Logger,
		MailboxSize: cfg.MailboxSize,
		IdleTimeout: cfg.IdleTimeout,
		Placement:   &route.Local{},
		Transport:   &route.LocalTransport{},
		CommitLog:   store.LocalLog{},
		Snapshots:   store.LocalSnapshots{},

		AlarmRetryBase: cfg.AlarmRetryBase,
		HibernateAfter: cfg.HibernateAfter,
		SlowTurn:       cfg.SlowTurn,
		Tracer:         rt.tracer,
		Sockets: func(id route.ObjectID) int {
			if g := hub.Lookup(id); g != nil {
				return g.Len()
			}
			return 0
		},
		OnRetire: hub.Retired,
	})
	if err != nil {
		hub.Shutdown(context.Background())
		rt.store.Close()
		return fail(err)
	}
	if rt.usage, err = usage.Open(rt.store); err != nil {
		rt.host.Close(context.Background())
		hub.Shutdown(context.Background())
		rt.store.Close()
		return fail(err)
	}
	rt.usageStop, rt.usageDone = make(chan struct{}), make(chan struct{})
	go rt.flushUsageEvery(UsageFlushEvery)
	return rt, nil
}

// Close stops the Runtime: calls queued but not started fail with
// ErrClosed, running turns finish and commit, and every database is
// closed. If ctx expires first, the outputs those turns still hold fail and
// the databases are closed anyway. Close is safe to call twice.
func (rt *Runtime) Close(ctx context.Context) error {
	rt.closeOnce.Do(func() {
		// No more messages are taken; turns finish and commit; then every
		// socket is closed with 1001 after what it was sent.
		rt.hub.StopReading()
		herr := rt.host.Close(ctx)
		if err := rt.hub.Shutdown(ctx); err != nil {
			rt.cfg.Logger.Warn("durable: close: WebSockets still closing when the deadline passed", "err", err)
		}
		rt.closeUsage()
		serr := rt.store.Close()
		if dropped := rt.tracer.Close(ctx); dropped > 0 {
			rt.cfg.Logger.Warn("durable: trace spans dropped: more turns ended than the tracer could keep up with", "spans", dropped)
		}
		rt.lock.Close()
		if rt.tmpDir {
			os.RemoveAll(rt.cfg.Dir)
		}
		if herr != nil {
			herr = fmt.Errorf("durable: close: turns still running when the deadline passed: %w", herr)
		}
		rt.closeErr = errors.Join(herr, serr)
	})
	return rt.closeErr
}

func init() {
	hooks.Stats = func(rt any) (int64, int64) {
		r := rt.(*Runtime)
		return r.host.Live(), r.store.Stats().OpenDatabases
	}
	hooks.DisableMetrics = func(rt any) { rt.(*Runtime).noMetrics.Store(true) }
	hooks.Config = func(rt any) any {
		return rt.(*Runtime).cfg
	}
}

// Stats are a Runtime's counts at one moment.
type Stats struct {
	Live                 int64 // objects with a live instance
	OpenDatabases        int64 // open SQLite connections
	WebSockets           int64 // open WebSockets, hibernated ones included
	HibernatedWebSockets int64 // WebSockets whose object is not live
}

// Stats returns the runtime's current counts.
func (rt *Runtime) Stats() Stats {
	open, hibernated := rt.hub.Counts(rt.host.IsLive)
	return Stats{Live: rt.host.Live(), OpenDatabases: rt.store.Stats().OpenDatabases, WebSockets: open, HibernatedWebSockets: hibernated}
}
