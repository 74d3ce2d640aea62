package store

import (
	"errors"
	"fmt"
	"math"

	"github.com/ncruces/go-sqlite3"
)

// Cursor reads the result of Exec. It is valid only within the turn that
// made it. An error (syntax, refusal, limit, a failure while stepping) is
// reported by Err and by every reading method.
//
// Rows read and written: SQLite keeps no per-statement row counters, so
// RowsWritten counts the rows the statement inserted, updated or deleted
// (triggers included), and RowsRead is the largest of the rows it returned,
// the rows it stepped through in full table scans, and the rows a write
// changed.
type Cursor struct {
	o        *Object
	turn     uint64
	stmt     *sqlite3.Stmt // the live statement of a lazy cursor
	cacheKey string        // non-empty when stmt belongs to the statement cache
	cols     []string

	rows [][]any // buffered rows (writes, several statements)
	pos  int     // next buffered row
	cur  []any   // the current row
	next []any   // a lazy cursor's next row, stepped ahead

	err     error
	errRead bool // err was reported to the user
	done    bool // no more rows

	rowsRead, rowsWritten int64
	returned              int64
}

var (
	errStaleCursor = errors.New("store: cursor used outside the turn that made it")
	errNoRow       = errors.New("store: no current row: call Next first")
	errOneNone     = errors.New("store: expected exactly one result from SQL query, but got no results")
	errOneMany     = errors.New("store: expected exactly one result from SQL query, but got multiple results")
)

// check reports the cursor's error, marking it read, or a stale cursor.
func (c *Cursor) check() error {
	if c.err != nil {
		c.errRead = true
		return c.err
	}
	if c.o.turnSeq != c.turn || !c.o.inTurn {
		return errStaleCursor
	}
	return nil
}

// runToEnd steps a write statement to completion at Exec, buffering any
// rows it returns (RETURNING).
func (c *Cursor) runToEnd() {
	s := c.stmt
	conn := c.o.conn.c
	before := conn.TotalChanges()
	for s.Step() {
		c.rows = append(c.rows, rowValues(s))
		c.returned++
	}
	err := s.Err()
	c.rowsWritten = conn.TotalChanges() - before
	c.rowsRead = max(c.returned, int64(s.Status(sqlite3.STMTSTATUS_FULLSCAN_STEP, false)), c.rowsWritten)
	c.release()
	if err != nil {
		// Only now: sqlError may reset the object and close the
		// connection with its statements.
		c.err = c.o.sqlError(err)
		c.rows = nil
	}
	c.done = c.err != nil
}

// stepFirst runs a read-only statement to its first row at Exec, so the
// statement has run (and its errors show) before Exec returns; the rest of
// the rows are read lazily, one row ahead of the caller, so the statement
// goes back to the cache as soon as its last row is fetched.
func (c *Cursor) stepFirst() {
	c.fetch()
}

// fetch steps the live statement once into c.next, releasing it at the end.
func (c *Cursor) fetch() {
	if c.stmt.Step() {
		c.next = rowValues(c.stmt)
		c.returned++
		return
	}
	c.next = nil
	err := c.stmt.Err()
	c.release()
	if err != nil {
		c.err = c.o.sqlError(err)
	}
}

func rowValues(s *sqlite3.Stmt) []any {
	row := make([]any, s.ColumnCount())
	for i := range row {
		row[i] = columnValue(s, i)
	}
	return row
}

// release gives the statement back (to the cache) once no more rows will
// be read from it.
func (c *Cursor) release() {
	if c.stmt == nil {
		return
	}
	c.rowsRead = max(c.rowsRead, c.returned, int64(c.stmt.Status(sqlite3.STMTSTATUS_FULLSCAN_STEP, false)))
	c.o.releaseStmt(c.stmt, c.cacheKey)
	c.stmt = nil
	// A statement is done here, once: what it read and wrote counts.
	c.o.rowsRead += c.rowsRead
	c.o.rowsWritten += c.rowsWritten
}

// Next advances to the next row and reports whether there is one.
func (c *Cursor) Next() bool {
	if c.check() != nil {
		c.cur = nil
		return false
	}
	if c.next != nil {
		c.cur = c.next
		c.next = nil
		if c.stmt != nil {
			c.fetch()
		}
		return true
	}
	if c.pos < len(c.rows) {
		c.cur = c.rows[c.pos]
		c.rows[c.pos] = nil
		c.pos++
		return true
	}
	c.cur, c.done = nil, true
	if c.err != nil {
		c.errRead = true
	}
	return false
}

// Err returns the cursor's error, if any.
func (c *Cursor) Err() error {
	if c.err != nil {
		c.errRead = true
	}
	return c.err
}

// Columns returns the result's column names (valid right after Exec). The
// slice may be shared with other cursors of the same query: do not modify it.
func (c *Cursor) Columns() []string { return c.cols }

// RowsRead returns the rows read so far (see Cursor).
func (c *Cursor) RowsRead() int64 {
	if c.stmt != nil {
		return max(c.rowsRead, c.returned, int64(c.stmt.Status(sqlite3.STMTSTATUS_FULLSCAN_STEP, false)))
	}
	return max(c.rowsRead, c.returned)
}

// RowsWritten returns the rows the statement wrote.
func (c *Cursor) RowsWritten() int64 { return c.rowsWritten }

// Close releases the cursor's statement; unread rows are dropped. The
// turn's end closes every cursor anyway.
func (c *Cursor) Close() error {
	c.release()
	c.done = true
	c.rows, c.cur, c.next = nil, nil, nil
	return nil
}

// Row returns the current row as a map from column name to value (nil when
// there is no current row). With duplicate column names the last one wins;
// use Raw to see them all.
func (c *Cursor) Row() map[string]any {
	if c.check() != nil || c.cur == nil {
		return nil
	}
	return c.rowMap(c.cur)
}

func (c *Cursor) rowMap(row []any) map[string]any {
	m := make(map[string]any, len(row))
	for i, v := range row {
		m[c.cols[i]] = v
	}
	return m
}

// Scan copies the current row's columns into dest. Before the first Next it
// moves to the first row. Destinations: *any, *int64, *int, *int32,
// *float64, *string, *[]byte, *bool. A NULL column can only go into *any
// or *[]byte (as nil).
func (c *Cursor) Scan(dest ...any) error {
	if err := c.check(); err != nil {
		return err
	}
	if c.cur == nil && !c.done && c.pos == 0 && (c.next != nil || len(c.rows) > 0 || c.returned == 0) {
		if !c.Next() {
			if err := c.check(); err != nil {
				return err
			}
			return errNoRow
		}
	}
	if c.cur == nil {
		return errNoRow
	}
	if len(dest) != len(c.cur) {
		return fmt.Errorf("store: Scan: %d destinations for %d columns", len(dest), len(c.cur))
	}
	for i, d := range dest {
		if err := scanValue(c.cur[i], d); err != nil {
			return fmt.Errorf("store: Scan column %d (%s): %w", i, c.cols[i], err)
		}
	}
	return nil
}

func scanValue(v, dest any) error {
	if p, ok := dest.(*any); ok {
		*p = v
		return nil
	}
	if v == nil {
		if p, ok := dest.(*[]byte); ok {
			*p = nil
			return nil
		}
		return fmt.Errorf("value is NULL; scan it into *any or *[]byte")
	}
	switch p := dest.(type) {
	case *int64:
		switch x := v.(type) {
		case int64:
			*p = x
			return nil
		case float64:
			if x == math.Trunc(x) && x >= math.MinInt64 && x < math.MaxInt64 {
				*p = int64(x)
				return nil
			}
		}
	case *int:
		var n int64
		if err := scanValue(v, &n); err != nil {
			return err
		}
		*p = int(n)
		return nil
	case *int32:
		var n int64
		if err := scanValue(v, &n); err != nil {
			return err
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return fmt.Errorf("%d overflows int32", n)
		}
		*p = int32(n)
		return nil
	case *float64:
		switch x := v.(type) {
		case float64:
			*p = x
			return nil
		case int64:
			*p = float64(x)
			return nil
		}
	case *bool:
		if x, ok := v.(int64); ok {
			*p = x != 0
			return nil
		}
	case *string:
		switch x := v.(type) {
		case string:
			*p = x
			return nil
		case []byte:
			*p = string(x)
			return nil
		}
	case *[]byte:
		switch x := v.(type) {
		case []byte:
			*p = x
			return nil
		case string:
			*p = []byte(x)
			return nil
		}
	default:
		return fmt.Errorf("unsupported destination %T", dest)
	}
	return fmt.Errorf("cannot scan %T into %T", v, dest)
}

// remaining reads every row after the current one.
func (c *Cursor) remaining() ([][]any, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	var out [][]any
	for c.Next() {
		out = append(out, c.cur)
	}
	if c.err != nil {
		return nil, c.err
	}
	return out, nil
}

// All returns the remaining rows as maps.
func (c *Cursor) All() ([]map[string]any, error) {
	rows, err := c.remaining()
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		out[i] = c.rowMap(r)
	}
	return out, nil
}

// One returns the only remaining row; it is an error if there is none or
// more than one.
func (c *Cursor) One() (map[string]any, error) {
	rows, err := c.remaining()
	if err != nil {
		return nil, err
	}
	switch len(rows) {
	case 0:
		return nil, errOneNone
	case 1:
		return c.rowMap(rows[0]), nil
	}
	return nil, errOneMany
}

// Raw returns the remaining rows as value slices, in column order.
func (c *Cursor) Raw() ([][]any, error) {
	rows, err := c.remaining()
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = [][]any{}
	}
	return rows, nil
}

// closeCursors releases the statements of the turn's cursors.
func (o *Object) closeCursors() {
	for i, c := range o.cursors {
		c.release()
		o.cursors[i] = nil
	}
	o.cursors = o.cursors[:0]
}
