package store

import (
	"context"
	"errors"
	"fmt"
)

// ErrWouldWrite is QueryReadOnly's answer to a statement that would write.
var ErrWouldWrite = errors.New("store: the statement would write; only read-only queries are allowed")

// ErrNoData is QueryReadOnly's answer for an object without a database.
var ErrNoData = errors.New("store: the object has no stored data")

// QueryReadOnly runs one statement that SQLite reports read-only (any
// other, or several statements, is refused and nothing runs) and returns
// its column names and at most maxRows rows; truncated says more followed.
// ctx bounds its time (SQLite is interrupted when it ends). The usual
// refusals of user SQL apply (internal tables, ATTACH, pragmas). Owner
// only, in a turn; the turn writes nothing.
func (o *Object) QueryReadOnly(ctx context.Context, query string, maxRows int) (cols []string, rows [][]any, truncated bool, err error) {
	if absent, err := o.absent(); err != nil {
		return nil, nil, false, err
	} else if absent {
		return nil, nil, false, ErrNoData
	}
	if err := o.ensure(); err != nil {
		return nil, nil, false, err
	}
	if len(query) > MaxSQLBytes {
		return nil, nil, false, limitError("SQL statement length limit (%d bytes): the query is %d bytes", MaxSQLBytes, len(query))
	}
	// Prepared afresh, never from the statement cache, so that the
	// authorizer sees it in read-only mode.
	// The authorizer refuses every write while the statement is prepared
	// and while it runs: a table-valued function such as pragma_optimize
	// prepares its own statement as the rows are read.
	o.authErr = nil
	o.readOnlyQuery = true
	defer func() { o.readOnlyQuery = false }()
	s, tail, err := o.conn.c.Prepare(query)
	if err != nil {
		return nil, nil, false, o.sqlError(err)
	}
	if s == nil {
		return nil, nil, false, errNoStatement
	}
	defer s.Close()
	if !blankSQL(tail) {
		return nil, nil, false, errors.New("store: one statement at a time")
	}
	if !s.ReadOnly() {
		return nil, nil, false, ErrWouldWrite
	}
	if n := s.BindCount(); n != 0 {
		return nil, nil, false, fmt.Errorf("store: the query has %d parameters; give it values in the SQL text", n)
	}
	prev := o.conn.c.SetInterrupt(ctx)
	defer o.conn.c.SetInterrupt(prev)
	for i := range s.ColumnCount() {
		cols = append(cols, s.ColumnName(i))
	}
	rows = [][]any{}
	for s.Step() {
		if len(rows) == maxRows {
			truncated = true
			break
		}
		rows = append(rows, rowValues(s))
	}
	if err := s.Err(); err != nil {
		if errors.Is(o.authErr, ErrWouldWrite) {
			return nil, nil, false, ErrWouldWrite
		}
		if ctx.Err() != nil {
			return nil, nil, false, fmt.Errorf("store: query stopped: %w", ctx.Err())
		}
		return nil, nil, false, fmt.Errorf("store: query: %w", err)
	}
	o.rowsRead += int64(len(rows))
	return cols, rows, truncated, nil
}
