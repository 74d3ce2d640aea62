package durable

import (
	"net/http"
	"sort"

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
