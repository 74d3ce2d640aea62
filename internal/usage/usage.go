// Package usage keeps what each object used, in the platform's billing
// units: requests (turns), wall time, rows read, rows written, and its
// stored bytes. The runtime accumulates the counts in memory (per live
// object, atomics only its own goroutine adds to) and a Book persists them
// in batches: one transaction of the node-level database Dir/usage.sqlite
// per flush, never one write per request.
package usage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/durable-go/durable/internal/store"
)

// ErrClosed is returned by a closed Book.
var ErrClosed = errors.New("usage: the usage database is closed (the runtime is closing)")

// Delta is what one object used since the last flush.
type Delta struct {
	NS, ID                string
	Requests, WallNanos   int64
	RowsRead, RowsWritten int64
	Bytes                 int64 // its database's size now (-1: unknown, keep the last)
}

// Totals is what one object used in all.
type Totals struct {
	NS          string `json:"namespace"`
	ID          string `json:"id"`
	Requests    int64  `json:"requests"`
	WallNanos   int64  `json:"wall_ns"`
	RowsRead    int64  `json:"rows_read"`
	RowsWritten int64  `json:"rows_written"`
	Bytes       int64  `json:"bytes"`
}

// Orders lists the columns Top sorts by.
var Orders = map[string]string{
	"requests": "requests", "wall": "wall_ns", "rows_read": "rows_read",
	"rows_written": "rows_written", "bytes": "bytes",
}

// Book is the persisted usage of every object of a node. Its methods are
// safe for concurrent use (they take turns of the usage database).
type Book struct {
	mu      sync.Mutex
	o       *store.Object
	flushes int64 // transactions written (guarded by mu)
}

const schema = `CREATE TABLE IF NOT EXISTS usage (
	ns TEXT NOT NULL, id TEXT NOT NULL,
	requests INTEGER NOT NULL DEFAULT 0, wall_ns INTEGER NOT NULL DEFAULT 0,
	rows_read INTEGER NOT NULL DEFAULT 0, rows_written INTEGER NOT NULL DEFAULT 0,
	bytes INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (ns, id)) WITHOUT ROWID`

// Open opens the node's usage database.
func Open(st *store.Store) (*Book, error) {
	o, err := st.AcquireNode("usage")
	if err != nil {
		return nil, err
	}
	b := &Book{o: o}
	if err := b.turn(func(o *store.Object) error { return o.Exec(schema).Err() }); err != nil {
		o.Release()
		return nil, fmt.Errorf("usage: create the table: %w", err)
	}
	return b, nil
}

// Close releases the database.
func (b *Book) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.o != nil {
		b.o.Release()
		b.o = nil
	}
}

// turn runs fn as one turn of the usage database and waits until it is
// durable.
func (b *Book) turn(fn func(o *store.Object) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.o == nil {
		return ErrClosed
	}
	if err := b.o.Begin(); err != nil {
		return err
	}
	err := fn(b.o)
	p, err := b.o.End(err)
	b.o.Commit()
	if err != nil {
		return err
	}
	return p.Wait(context.Background())
}

// Add persists deltas in one transaction.
func (b *Book) Add(deltas []Delta) error {
	if len(deltas) == 0 {
		return nil
	}
	err := b.turn(func(o *store.Object) error {
		for _, d := range deltas {
			err := o.Exec(`INSERT INTO usage (ns, id, requests, wall_ns, rows_read, rows_written, bytes)
				VALUES (?, ?, ?, ?, ?, ?, max(?, 0))
				ON CONFLICT (ns, id) DO UPDATE SET requests = requests + excluded.requests,
					wall_ns = wall_ns + excluded.wall_ns, rows_read = rows_read + excluded.rows_read,
					rows_written = rows_written + excluded.rows_written,
					bytes = CASE WHEN ? >= 0 THEN excluded.bytes ELSE bytes END`,
				d.NS, d.ID, d.Requests, d.WallNanos, d.RowsRead, d.RowsWritten, d.Bytes, d.Bytes).Err()
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		b.mu.Lock()
		b.flushes++
		b.mu.Unlock()
	}
	return err
}

// Flushes returns the transactions Add wrote.
func (b *Book) Flushes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushes
}

// Get returns one object's totals (zero if it never used anything).
func (b *Book) Get(ns, id string) (Totals, error) {
	t := Totals{NS: ns, ID: id}
	err := b.turn(func(o *store.Object) error {
		rows, err := o.Exec("SELECT requests, wall_ns, rows_read, rows_written, bytes FROM usage WHERE ns = ? AND id = ?", ns, id).Raw()
		if err != nil || len(rows) == 0 {
			return err
		}
		r := rows[0]
		t.Requests, t.WallNanos, t.RowsRead, t.RowsWritten, t.Bytes = r[0].(int64), r[1].(int64), r[2].(int64), r[3].(int64), r[4].(int64)
		return nil
	})
	return t, err
}

// Top returns the n objects (of namespace ns, or of all when ns is "")
// that used the most by the order's column (a key of Orders).
func (b *Book) Top(ns, order string, n int) ([]Totals, error) {
	col, ok := Orders[order]
	if !ok {
		return nil, fmt.Errorf("usage: unknown order %q", order)
	}
	var out []Totals
	err := b.turn(func(o *store.Object) error {
		rows, err := o.Exec(`SELECT ns, id, requests, wall_ns, rows_read, rows_written, bytes FROM usage
			WHERE ? = '' OR ns = ? ORDER BY `+col+` DESC, ns, id LIMIT ?`, ns, ns, n).Raw()
		if err != nil {
			return err
		}
		for _, r := range rows {
			out = append(out, Totals{NS: r[0].(string), ID: r[1].(string), Requests: r[2].(int64), WallNanos: r[3].(int64),
				RowsRead: r[4].(int64), RowsWritten: r[5].(int64), Bytes: r[6].(int64)})
		}
		return nil
	})
	return out, err
}
