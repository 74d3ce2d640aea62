package durable

import (
	"github.com/durable-go/durable/internal/codec"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/store"
)

// Storage is an object's private, transactional storage: SQL and KV in one
// SQLite database. Use it from the object's turns (its constructor,
// methods and handlers). Every turn is a transaction: its writes commit
// together when it ends, or at a durability point inside it (an outgoing
// call, a flush of a streaming response); a turn that fails (an error, a
// panic, an unread Exec error, Abort) rolls back its writes since the last
// durability point.
//
// Use Storage from the object's turns only. While the turn waits on an
// outgoing call (or several, made in parallel), its storage is not
// available: the calls are a durability point, and the turn's next writes
// start when the last call returns. A goroutine the turn started must not
// use Storage after the turn ended: its calls would join whichever turn of
// the object runs at that moment (Storage is fenced per instance, not per
// turn).
//
// Limits (each an error wrapping ErrLimit that names it): a KV key ≤ 2,048
// bytes; key + encoded value ≤ 2 MiB; ≤ 128 keys per multi-key call; an SQL
// statement ≤ 100,000 bytes; ≤ 100 bound parameters per statement; ≤ 100
// columns; a string, BLOB or row ≤ 2,200,000 bytes; the database ≤
// Config.MaxDatabaseSize.
type Storage struct {
	a         *host.Activation
	gen       uint64 // the instance this handle belongs to; a reset fences it
	alarmer   bool   // the class implements Alarmer
	className string
}

// do runs fn on the object's storage unless this instance was reset.
func (s *Storage) do(fn func(o *store.Object) error) error {
	return publicErrorOrNil(s.a.Do(s.gen, fn))
}

// Exec runs SQL. The statement runs now: a write takes full effect before
// Exec returns, whether or not the cursor is read; rows are read lazily.
// Several statements separated by ";" run in order, atomically, and the
// cursor reads the last one's rows (bound arguments are then not allowed).
// An error is reported by Cursor.Err and by every reading method; an error
// nobody read by the end of the turn fails the turn.
//
// User SQL may not touch tables named _durable_*, ATTACH or DETACH, run
// BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE (use Transaction), create TEMP
// objects, or run PRAGMAs other than table_info, table_xinfo, table_list,
// index_list, index_info, index_xinfo, foreign_key_list, quick_check,
// integrity_check, foreign_keys, defer_foreign_keys and optimize.
func (s *Storage) Exec(query string, args ...any) *Cursor {
	c := &Cursor{s: s}
	err := s.do(func(o *store.Object) error {
		c.c = o.Exec(query, args...)
		return nil
	})
	if err != nil {
		c.err = err
	}
	return c
}

// Get decodes the value at key into dst (a non-nil pointer) and reports
// whether the key exists.
func (s *Storage) Get(key string, dst any) (bool, error) {
	var ok bool
	err := s.do(func(o *store.Object) (err error) {
		ok, err = o.Get(key, dst)
		return err
	})
	return ok, err
}

// GetMany returns the values of the keys that exist (at most 128 keys).
func (s *Storage) GetMany(keys []string) (map[string]Value, error) {
	var out map[string]Value
	err := s.do(func(o *store.Object) error {
		m, err := o.GetMany(keys)
		if err != nil {
			return err
		}
		out = make(map[string]Value, len(m))
		for k, v := range m {
			out[k] = Value(v)
		}
		return nil
	})
	return out, err
}

// Put stores v at key. Any value encoding/json round-trips may be stored;
// []byte is stored raw.
func (s *Storage) Put(key string, v any) error {
	return s.do(func(o *store.Object) error { return o.Put(key, v) })
}

// PutMany stores every entry (at most 128), atomically: all or nothing.
func (s *Storage) PutMany(entries map[string]any) error {
	return s.do(func(o *store.Object) error { return o.PutMany(entries) })
}

// Delete removes the keys (at most 128) and returns how many existed.
func (s *Storage) Delete(keys ...string) (int, error) {
	var n int
	err := s.do(func(o *store.Object) (err error) {
		n, err = o.Delete(keys...)
		return err
	})
	return n, err
}

// ListOptions select the entries List returns. Keys are ordered by their
// UTF-8 bytes. Start is inclusive and StartAfter exclusive (set one at
// most); End is exclusive; Prefix keeps the keys that start with it;
// Reverse lists in descending order (the bounds keep their meaning); Limit
// > 0 caps the count.
type ListOptions struct {
	Start, StartAfter, End, Prefix string
	Reverse                        bool
	Limit                          int
}

// Entry is one KV entry.
type Entry struct {
	Key   string
	Value Value
}

// Value is a stored KV value.
type Value []byte

// Decode decodes the value into dst (a non-nil pointer).
func (v Value) Decode(dst any) error { return codec.Unmarshal(v, dst) }

// List returns the entries the options select, in key order.
func (s *Storage) List(opts ListOptions) ([]Entry, error) {
	var out []Entry
	err := s.do(func(o *store.Object) error {
		es, err := o.List(store.ListOptions(opts))
		if err != nil {
			return err
		}
		out = make([]Entry, len(es))
		for i, e := range es {
			out[i] = Entry{Key: e.Key, Value: Value(e.Value)}
		}
		return nil
	})
	return out, err
}

// DeleteAll removes every KV entry, every SQL table and the alarm,
// atomically.
func (s *Storage) DeleteAll() error {
	return s.do(func(o *store.Object) error { return o.DeleteAll() })
}

// DatabaseSize returns the bytes the object's database uses (its file and
// its WAL).
func (s *Storage) DatabaseSize() int64 {
	var n int64
	s.do(func(o *store.Object) (err error) {
		n, err = o.DatabaseSize()
		return err
	})
	return n
}

// Transaction runs fn atomically: if fn returns an error (returned
// unchanged, so errors.Is works) or panics, everything it wrote is rolled
// back, SQL and KV alike. Transactions nest.
func (s *Storage) Transaction(fn func() error) (err error) {
	if err := s.do(func(o *store.Object) error { return o.TxBegin() }); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			s.do(func(o *store.Object) error { return o.TxEnd(false) })
			panic(p)
		}
	}()
	if err := fn(); err != nil {
		s.do(func(o *store.Object) error { return o.TxEnd(false) })
		return err
	}
	return s.do(func(o *store.Object) error { return o.TxEnd(true) })
}

// Cursor reads the result of Exec. It is valid within the turn that made it
// (until the turn's next durability point).
//
// SQLite keeps no per-statement row counters: RowsWritten counts the rows
// the statement inserted, updated or deleted (triggers included), and
// RowsRead is the largest of the rows returned, the rows stepped through in
// full table scans, and the rows written.
type Cursor struct {
	s   *Storage
	c   *store.Cursor
	err error // the instance was reset before Exec ran
}

func (c *Cursor) do(fn func(*store.Cursor) error) error {
	if c.err != nil {
		return c.err
	}
	return c.s.do(func(*store.Object) error { return fn(c.c) })
}

// Next advances to the next row and reports whether there is one.
func (c *Cursor) Next() bool {
	var ok bool
	c.do(func(sc *store.Cursor) error { ok = sc.Next(); return nil })
	return ok
}

// Scan copies the current row's columns into dest (before the first Next
// it moves to the first row). Destinations: *any, *int64, *int, *int32,
// *float64, *string, *[]byte, *bool; a NULL column only into *any or
// *[]byte.
func (c *Cursor) Scan(dest ...any) error {
	return c.do(func(sc *store.Cursor) error { return sc.Scan(dest...) })
}

// Row returns the current row as a map from column name to value.
func (c *Cursor) Row() map[string]any {
	var m map[string]any
	c.do(func(sc *store.Cursor) error { m = sc.Row(); return nil })
	return m
}

// All returns the remaining rows as maps.
func (c *Cursor) All() ([]map[string]any, error) {
	var rows []map[string]any
	err := c.do(func(sc *store.Cursor) (err error) {
		rows, err = sc.All()
		return err
	})
	return rows, err
}

// One returns the only remaining row; it is an error if there is none or
// more than one.
func (c *Cursor) One() (map[string]any, error) {
	var row map[string]any
	err := c.do(func(sc *store.Cursor) (err error) {
		row, err = sc.One()
		return err
	})
	return row, err
}

// Raw returns the remaining rows as value slices in column order. Values
// are int64, float64, string, []byte or nil.
func (c *Cursor) Raw() ([][]any, error) {
	var rows [][]any
	err := c.do(func(sc *store.Cursor) (err error) {
		rows, err = sc.Raw()
		return err
	})
	return rows, err
}

// Columns returns the column names (valid right after Exec). Do not modify
// the slice.
func (c *Cursor) Columns() []string {
	if c.err != nil {
		return nil
	}
	return c.c.Columns()
}

// RowsRead returns the rows read so far.
func (c *Cursor) RowsRead() int64 {
	var n int64
	c.do(func(sc *store.Cursor) error { n = sc.RowsRead(); return nil })
	return n
}

// RowsWritten returns the rows the statement wrote.
func (c *Cursor) RowsWritten() int64 {
	if c.err != nil {
		return 0
	}
	return c.c.RowsWritten()
}

// Err returns the cursor's error, if any.
func (c *Cursor) Err() error {
	if c.err != nil {
		return c.err
	}
	var err error
	if derr := c.s.do(func(*store.Object) error { err = c.c.Err(); return nil }); derr != nil {
		return derr
	}
	return err
}

// Close releases the cursor's statement early (the turn's end does it
// anyway).
func (c *Cursor) Close() error {
	return c.do(func(sc *store.Cursor) error { return sc.Close() })
}
