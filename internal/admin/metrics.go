// Package admin holds what operators use to see and act on a running
// runtime. This file: the Prometheus exporter. It reads the runtime's
// counters (internal/metrics) when it is scraped, so the hot path pays for
// plain atomic adds only, never for Prometheus.
package admin

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/durable-go/durable/internal/metrics"
)

// NamespaceGauges is what one namespace holds at the moment of a scrape.
type NamespaceGauges struct {
	Live              int64 // live instances
	Hibernated        int64 // objects whose instance is evicted while their WebSockets stay open
	Mailbox           int64 // events queued for live instances
	WebSockets        int64 // open WebSockets, hibernated ones included
	HibernatedSockets int64 // open WebSockets of hibernated objects
	DatabaseBytes     int64 // size of the databases on disk (refreshed at most once a minute)
}

// Gauges is the runtime's state at the moment of a scrape.
type Gauges struct {
	OpenDatabases int64
	Namespaces    map[string]NamespaceGauges
}

// Source is what the exporter reads.
type Source struct {
	Namespaces func() []*metrics.Namespace // every defined namespace's counters
	Store      *metrics.Store
	Gauges     func() Gauges
}

// MetricsHandler serves the runtime's metrics, and the Go runtime's and the
// process's, in the Prometheus exposition format. Names start with
// durable_; labels are namespaces (never object IDs), methods and kinds.
func MetricsHandler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("durable_"+name, help, labels, nil)
}

var (
	dInstances   = desc("instances", "Objects by state: live (an instance in memory) or hibernated (evicted while its WebSockets stay open).", "namespace", "state")
	dActivations = desc("activations_total", "Objects activated: made live, their storage opened (an instance reset inside a live object is not counted).", "namespace")
	dEvictions   = desc("evictions_total", "Instances evicted (idle, or hibernating with WebSockets open).", "namespace")
	dTurns       = desc("turns_total", "Turns run: calls, fetches, alarms, WebSocket events.", "namespace")
	dTurnSeconds = desc("turn_duration_seconds", "A turn's duration, from its start to its reply.", "namespace")
	dTurnErrors  = desc("turn_errors_total", "Turns that failed, by kind: error (returned), panic (panic or Abort), reset (the instance was reset under it), cancelled, other.", "namespace", "kind")
	dMailbox     = desc("mailbox_depth", "Events queued for live instances.", "namespace")
	dOverloaded  = desc("overloaded_total", "Calls refused because the object's mailbox was full.", "namespace")
	dRPC         = desc("rpc_calls_total", "Calls into objects by method (fetch: HTTP into the object).", "namespace", "method")
	dAlarmsSet   = desc("alarms_scheduled_total", "Alarms set (SetAlarm calls that took effect).", "namespace")
	dAlarmsFired = desc("alarms_fired_total", "Alarm handlers run.", "namespace")
	dAlarmsRetry = desc("alarms_retried_total", "Alarm handlers that failed and were rescheduled.", "namespace")
	dAlarmsDrop  = desc("alarms_dropped_total", "Alarms given up after their last retry failed.", "namespace")
	dAlarmLate   = desc("alarm_lateness_seconds", "Seconds from an alarm's time to the start of its handler.", "namespace")
	dWS          = desc("websockets", "Open WebSockets by state: open (all) or hibernated (their object is not live).", "namespace", "state")
	dWSMessages  = desc("websocket_messages_total", "WebSocket messages, in (delivered to the object) or out (sent by it).", "namespace", "direction")
	dHeld        = desc("outputs_held", "Replies (RPC results, HTTP responses) the output gate holds until the writes they depend on are durable.", "namespace")
	dDBBytes     = desc("database_bytes", "Size on disk of the namespace's databases and their WALs, from a walk of the data directory at most once a minute.", "namespace")
	dRows        = desc("rows_total", "Rows read and written by SQL statements and KV calls (the platform's billing units).", "namespace", "op")
	dOpenDBs     = desc("open_databases", "Open SQLite databases (connections).")
	dCommits     = desc("commit_batches_total", "Batches of turns committed.")
	dBatchTurns  = desc("batch_turns", "Turns committed together in one batch.")
	dSyncBatches = desc("sync_batches", "Batches one sync round made durable.")
	dSyncTurns   = desc("sync_turns", "Turns one sync round made durable.")
	dSyncSeconds = desc("sync_duration_seconds", "A sync round's duration (fdatasync of each WAL, or one syncfs).")
	dSyncErrors  = desc("sync_errors_total", "Batches whose sync failed (their objects reset).")
)

// collector reads the runtime's counters at scrape time.
type collector struct{ src Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dInstances, dActivations, dEvictions, dTurns, dTurnSeconds, dTurnErrors,
		dMailbox, dOverloaded, dRPC, dAlarmsSet, dAlarmsFired, dAlarmsRetry, dAlarmsDrop, dAlarmLate, dWS,
		dWSMessages, dHeld, dRows, dDBBytes, dOpenDBs, dCommits, dBatchTurns, dSyncBatches, dSyncTurns, dSyncSeconds, dSyncErrors} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	g := c.src.Gauges()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	histogram := func(d *prometheus.Desc, h *metrics.Histogram, labels ...string) {
		s := h.Snapshot()
		ch <- prometheus.MustNewConstHistogram(d, s.Count, s.Sum, s.Buckets, labels...)
	}
	for _, m := range c.src.Namespaces() {
		ns := m.Name
		ng := g.Namespaces[ns]
		gauge(dInstances, ng.Live, ns, "live")
		gauge(dInstances, ng.Hibernated, ns, "hibernated")
		gauge(dMailbox, ng.Mailbox, ns)
		gauge(dWS, ng.WebSockets, ns, "open")
		gauge(dWS, ng.HibernatedSockets, ns, "hibernated")
		counter(dActivations, m.Activations.Load(), ns)
		counter(dEvictions, m.Evictions.Load(), ns)
		turns := m.TurnSeconds.Snapshot()
		counter(dTurns, turns.Count, ns)
		ch <- prometheus.MustNewConstHistogram(dTurnSeconds, turns.Count, turns.Sum, turns.Buckets, ns)
		for _, k := range metrics.Kinds {
			counter(dTurnErrors, m.TurnErrors[k].Load(), ns, k)
		}
		counter(dOverloaded, m.Overloaded.Load(), ns)
		methods := make([]string, 0, len(m.RPC))
		for name := range m.RPC {
			methods = append(methods, name)
		}
		sort.Strings(methods)
		for _, name := range methods {
			counter(dRPC, m.RPC[name].Load(), ns, name)
		}
		counter(dAlarmsSet, m.AlarmsSet.Load(), ns)
		counter(dAlarmsFired, m.AlarmsFired.Load(), ns)
		counter(dAlarmsRetry, m.AlarmsRetried.Load(), ns)
		counter(dAlarmsDrop, m.AlarmsDropped.Load(), ns)
		histogram(dAlarmLate, m.AlarmLateness, ns)
		counter(dWSMessages, m.WSMessagesIn.Load(), ns, "in")
		counter(dWSMessages, m.WSMessagesOut.Load(), ns, "out")
		gauge(dHeld, m.OutputsHeld.Load(), ns)
		gauge(dDBBytes, ng.DatabaseBytes, ns)
		counter(dRows, m.RowsRead.Load(), ns, "read")
		counter(dRows, m.RowsWritten.Load(), ns, "written")
	}
	gauge(dOpenDBs, g.OpenDatabases)
	st := c.src.Store
	counter(dCommits, st.Commits.Load())
	histogram(dBatchTurns, st.TurnsPerBatch)
	histogram(dSyncBatches, st.BatchesPerSync)
	histogram(dSyncTurns, st.TurnsPerSync)
	histogram(dSyncSeconds, st.SyncSeconds)
	counter(dSyncErrors, st.SyncErrors.Load())
}
