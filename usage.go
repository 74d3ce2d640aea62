package durable

import (
	"time"

	"github.com/durable-go/durable/internal/route"
	"github.com/durable-go/durable/internal/usage"
)

// UsageFlushEvery is how often what objects used (requests, wall time,
// rows read and written, stored bytes) is written to Dir/usage.sqlite: in
// one transaction per flush, never one write per request.
const UsageFlushEvery = 10 * time.Second

// flushUsageEvery flushes the usage until Close.
func (rt *Runtime) flushUsageEvery(every time.Duration) {
	defer close(rt.usageDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			rt.flushUsage()
		case <-rt.usageStop:
			return
		}
	}
}

// flushUsage writes what objects used since the last flush; on failure
// the counts are kept for the next one.
func (rt *Runtime) flushUsage() {
	rt.usageMu.Lock()
	defer rt.usageMu.Unlock()
	if rt.usageClosed {
		return // Close made the last flush; counts after it are not kept
	}
	took := rt.host.TakeUsage()
	if len(took) == 0 {
		return
	}
	deltas := make([]usage.Delta, 0, len(took))
	for id, u := range took {
		deltas = append(deltas, usage.Delta{NS: id.Namespace, ID: id.ID, Requests: u.Requests, WallNanos: u.WallNanos,
			RowsRead: u.RowsRead, RowsWritten: u.RowsWritten, Bytes: rt.dbSize(id)})
	}
	if err := rt.usage.Add(deltas); err != nil {
		rt.cfg.Logger.Error("durable: usage not recorded; kept for the next flush", "objects", len(deltas), "err", err)
		rt.host.KeepUsage(took)
	}
}

// dbSize is the size on disk of an object's database and WAL (-1 if it
// has none).
func (rt *Runtime) dbSize(id route.ObjectID) int64 {
	if n, ok := rt.store.DatabaseBytes(id.Namespace, id.ID); ok {
		return n
	}
	return -1
}

// closeUsage makes the last flush and closes the usage database: flushes
// that come later (an admin query racing Close) find it closed and take
// nothing, so no count is taken and then dropped.
func (rt *Runtime) closeUsage() {
	close(rt.usageStop)
	<-rt.usageDone
	rt.flushUsage() // what the last turns used
	rt.usageMu.Lock()
	rt.usageClosed = true
	rt.usage.Close()
	rt.usageMu.Unlock()
}
