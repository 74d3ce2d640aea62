package durable

import (
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/durable-go/durable/internal/admin"
	"github.com/durable-go/durable/internal/metrics"
)

// MetricsHandler returns a handler serving the runtime's metrics in the
// Prometheus text format: per namespace (never per object) instances live
// and hibernated, activations, evictions, turns with their durations and
// errors by kind, mailbox depth, overload refusals, calls by method,
// alarms (scheduled, fired, retried, dropped, lateness) and WebSockets
// (open, hibernated, messages in and out); for the storage engine, open
// databases, commit batches, turns per batch, batches per sync and sync
// latency; and the Go runtime's and the process's metrics. Every name
// starts with durable_. The counters are atomics the runtime updates as it
// goes; the handler reads them when scraped. `durable serve` mounts it at
// /metrics.
func (rt *Runtime) MetricsHandler() http.Handler {
	return admin.MetricsHandler(admin.Source{
		Namespaces: rt.namespaceMetrics,
		Store:      rt.storeMetrics,
		Gauges:     rt.gauges,
	})
}

// newNamespaceMetrics makes and keeps the counters of a namespace whose
// class has the given methods; "fetch" counts HTTP into its objects.
func (rt *Runtime) newNamespaceMetrics(name string, methods []string) *metrics.Namespace {
	m := metrics.NewNamespace(name, append(methods, "fetch"))
	rt.nsMetrics.Store(name, m)
	return m
}

// namespaceMetricsOf returns a namespace's counters, or nil.
func (rt *Runtime) namespaceMetricsOf(name string) *metrics.Namespace {
	if m, ok := rt.nsMetrics.Load(name); ok {
		return m.(*metrics.Namespace)
	}
	return nil
}

func (rt *Runtime) namespaceMetrics() []*metrics.Namespace {
	var out []*metrics.Namespace
	rt.nsMetrics.Range(func(_, v any) bool {
		out = append(out, v.(*metrics.Namespace))
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (rt *Runtime) gauges() admin.Gauges {
	g := admin.Gauges{OpenDatabases: rt.store.Stats().OpenDatabases, Namespaces: map[string]admin.NamespaceGauges{}}
	for ns, n := range rt.dbBytes.get(rt.store.ObjectsDir()) {
		ng := g.Namespaces[ns]
		ng.DatabaseBytes = n
		g.Namespaces[ns] = ng
	}
	for ns, l := range rt.host.Load() {
		ng := g.Namespaces[ns]
		ng.Live, ng.Mailbox = l.Live, l.Mailbox
		g.Namespaces[ns] = ng
	}
	for ns, c := range rt.hub.CountsByNamespace(rt.host.IsLive) {
		ng := g.Namespaces[ns]
		ng.WebSockets, ng.HibernatedSockets, ng.Hibernated = c.Open, c.Hibernated, c.Objects
		g.Namespaces[ns] = ng
	}
	return g
}

// dbBytesEvery is how often a scrape may start a new walk of the data
// directory for the databases' sizes.
const dbBytesEvery = time.Minute

// dbBytes is the size on disk of each namespace's databases (files and
// WALs), from a walk of the data directory that a scrape starts in the
// background at most once a minute: a scrape never waits for it, and a
// million objects cost one walk a minute, not one per scrape.
type dbBytes struct {
	mu      sync.Mutex
	last    time.Time        // guarded by mu; when the last walk started
	running bool             // guarded by mu
	sizes   map[string]int64 // guarded by mu; the last walk's result
}

// get returns the last walk's sizes, starting a new walk if due.
func (d *dbBytes) get(dir string) map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running && time.Since(d.last) >= dbBytesEvery {
		d.running, d.last = true, time.Now()
		go func() {
			sizes := walkSizes(dir)
			d.mu.Lock()
			d.sizes, d.running = sizes, false
			d.mu.Unlock()
		}()
	}
	return maps.Clone(d.sizes)
}

// walkSizes sums the sizes of the files under dir/<namespace>/.
func walkSizes(dir string) map[string]int64 {
	out := map[string]int64{}
	nss, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, ns := range nss {
		if !ns.IsDir() {
			continue
		}
		var total int64
		filepath.WalkDir(filepath.Join(dir, ns.Name()), func(_ string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil // a file that went away while walking is not counted
			}
			if info, err := e.Info(); err == nil {
				total += info.Size()
			}
			return nil
		})
		out[ns.Name()] = total
	}
	return out
}
