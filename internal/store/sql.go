package store

import (
	"errors"
	"fmt"
	"math"

	"github.com/ncruces/go-sqlite3"
)

var errNoStatement = errors.New("store: SQL code did not contain a statement")

// Exec runs a query in the current turn. The statement runs now: a write
// takes full effect before Exec returns, whether or not the cursor is read;
// the rows of a read-only statement are read lazily. Several statements
// separated by ";" run in order, atomically (all or nothing), and the cursor
// holds the last one's rows; bound arguments are then not allowed. Errors
// are reported by the cursor; one nobody reads fails the turn at End.
func (o *Object) Exec(query string, args ...any) *Cursor {
	c := &Cursor{o: o, turn: o.turnSeq}
	if err := o.ensure(); err != nil {
		return o.failed(c, err)
	}
	if len(query) > MaxSQLBytes {
		return o.failed(c, limitError("SQL statement length limit (%d bytes): the query is %d bytes", MaxSQLBytes, len(query)))
	}
	s, tail, key, err := o.prepareUser(query)
	if err != nil {
		return o.failed(c, err)
	}
	if s == nil {
		return o.failed(c, errNoStatement)
	}
	if blankSQL(tail) {
		c.stmt, c.cacheKey = s, key
		if err := o.bind(s, args); err != nil {
			return o.failed(c, err)
		}
		c.cols = o.conn.cache.columns(key, s)
		if s.ReadOnly() {
			c.stepFirst()
			if c.stmt != nil {
				o.cursors = append(o.cursors, c) // still holds its statement
			}
		} else {
			o.userWrote = true
			c.runToEnd()
		}
		if c.err != nil {
			o.unreadErr(c)
		}
		return c
	}
	o.releaseStmt(s, key)
	if len(args) > 0 {
		return o.failed(c, errors.New("store: bound arguments are allowed only when the query holds one statement"))
	}
	return o.execMany(c, query)
}

// execMany runs several statements inside one savepoint, buffering the last
// one's rows; a failure rolls back all of them.
func (o *Object) execMany(c *Cursor, query string) *Cursor {
	dc := o.conn
	if err := dc.runLazy(o, &dc.opSavepoint, sqlOpSavepoint); err != nil {
		return o.failed(c, o.sqlError(err))
	}
	var total Cursor
	rest := query
	for {
		s, tail, err := dc.c.Prepare(rest)
		if err != nil {
			return o.abortMany(c, o.sqlError(err))
		}
		if s == nil {
			break
		}
		if n := s.BindCount(); n > 0 {
			s.Close()
			return o.abortMany(c, errors.New("store: bound arguments are allowed only when the query holds one statement"))
		}
		step := &Cursor{o: o, turn: c.turn, stmt: s, cols: columns(s)}
		if !s.ReadOnly() {
			o.userWrote = true
		}
		step.runToEnd()
		s.Close()
		step.stmt = nil
		total.rowsRead += step.rowsRead
		total.rowsWritten += step.rowsWritten
		if step.err != nil {
			return o.abortMany(c, step.err)
		}
		c.cols, c.rows = step.cols, step.rows
		if blankSQL(tail) {
			break
		}
		rest = tail
	}
	if err := dc.runLazy(o, &dc.opRelease, sqlOpRelease); err != nil {
		return o.failed(c, o.sqlError(err))
	}
	c.rowsRead, c.rowsWritten = total.rowsRead, total.rowsWritten
	return c
}

func (o *Object) abortMany(c *Cursor, err error) *Cursor {
	if dc := o.conn; dc != nil && o.txnOpen {
		if rerr := dc.runLazy(o, &dc.opRollbackTo, sqlOpRollbackTo); rerr == nil {
			dc.runLazy(o, &dc.opRelease, sqlOpRelease)
		}
	}
	c.rows = nil
	return o.failed(c, err)
}

// failed records err on the cursor as an unread error.
func (o *Object) failed(c *Cursor, err error) *Cursor {
	c.err = err
	c.done = true
	if c.stmt != nil {
		o.releaseStmt(c.stmt, c.cacheKey)
		c.stmt = nil
	}
	o.unreadErr(c)
	return c
}

func (o *Object) unreadErr(c *Cursor) {
	if o.inTurn && c.turn == o.turnSeq {
		o.unread = append(o.unread, c)
	}
}

// unreadError returns the first Exec error of this turn nobody read.
func (o *Object) unreadError() error {
	var err error
	for _, c := range o.unread {
		if !c.errRead && err == nil {
			err = c.err
		}
	}
	clear(o.unread)
	o.unread = o.unread[:0]
	return err
}

// prepareUser prepares the first statement of query, from the cache when
// the query is one statement seen before. key is the cache key of a cached
// statement ("" when the caller owns s).
func (o *Object) prepareUser(query string) (s *sqlite3.Stmt, tail, key string, err error) {
	dc := o.conn
	if s := dc.cache.get(query); s != nil {
		return s, "", query, nil
	}
	o.authErr = nil
	s, tail, err = dc.c.PrepareFlags(query, sqlite3.PREPARE_PERSISTENT)
	if err != nil {
		return nil, "", "", o.sqlError(err)
	}
	if s == nil {
		return nil, "", "", nil
	}
	if n := s.BindCount(); n > MaxBoundParameters {
		s.Close()
		return nil, "", "", limitError("bound parameter limit (%d per statement): the statement has %d", MaxBoundParameters, n)
	}
	if blankSQL(tail) && dc.cache.put(query, s) {
		return s, tail, query, nil
	}
	return s, tail, "", nil
}

// releaseStmt returns a user statement to the cache, or closes it.
func (o *Object) releaseStmt(s *sqlite3.Stmt, key string) {
	if o.conn == nil {
		return
	}
	if key != "" {
		o.conn.cache.release(key, s)
		return
	}
	s.Close()
}

// bind binds args to s's parameters.
func (o *Object) bind(s *sqlite3.Stmt, args []any) error {
	if n := s.BindCount(); n != len(args) {
		return fmt.Errorf("store: the statement has %d parameters but %d arguments were given", n, len(args))
	}
	for i, a := range args {
		if err := bindArg(s, i+1, a); err != nil {
			return err
		}
	}
	return nil
}

func bindArg(s *sqlite3.Stmt, i int, a any) error {
	var err error
	switch v := a.(type) {
	case nil:
		err = s.BindNull(i)
	case int64:
		err = s.BindInt64(i, v)
	case int:
		err = s.BindInt64(i, int64(v))
	case int32:
		err = s.BindInt64(i, int64(v))
	case int16:
		err = s.BindInt64(i, int64(v))
	case int8:
		err = s.BindInt64(i, int64(v))
	case uint8:
		err = s.BindInt64(i, int64(v))
	case uint16:
		err = s.BindInt64(i, int64(v))
	case uint32:
		err = s.BindInt64(i, int64(v))
	case uint:
		if uint64(v) > math.MaxInt64 {
			return fmt.Errorf("store: argument %d: %d does not fit SQLite's 64-bit signed integer", i, v)
		}
		err = s.BindInt64(i, int64(v))
	case uint64:
		if v > math.MaxInt64 {
			return fmt.Errorf("store: argument %d: %d does not fit SQLite's 64-bit signed integer", i, v)
		}
		err = s.BindInt64(i, int64(v))
	case bool:
		err = s.BindBool(i, v)
	case float64:
		err = s.BindFloat(i, v)
	case float32:
		err = s.BindFloat(i, float64(v))
	case string:
		err = s.BindText(i, v)
	case []byte:
		if v == nil {
			err = s.BindNull(i)
		} else {
			err = s.BindBlob(i, v)
		}
	default:
		return fmt.Errorf("store: argument %d has type %T; SQL arguments are integers, floats, strings, []byte, bool or nil", i, a)
	}
	if err != nil {
		if errors.Is(err, sqlite3.TOOBIG) {
			return limitError("SQL string, BLOB or row size limit (%d bytes): argument %d", MaxValueBytes, i)
		}
		return fmt.Errorf("store: bind argument %d: %w", i, err)
	}
	return nil
}

func columns(s *sqlite3.Stmt) []string {
	n := s.ColumnCount()
	if n == 0 {
		return nil
	}
	cols := make([]string, n)
	for i := range cols {
		cols[i] = s.ColumnName(i)
	}
	return cols
}

// columnValue reads column i of the current row as int64, float64, string,
// []byte or nil.
func columnValue(s *sqlite3.Stmt, i int) any {
	switch s.ColumnType(i) {
	case sqlite3.INTEGER:
		return s.ColumnInt64(i)
	case sqlite3.FLOAT:
		return s.ColumnFloat(i)
	case sqlite3.TEXT:
		return s.ColumnText(i)
	case sqlite3.BLOB:
		return s.ColumnBlob(i, []byte{})
	}
	return nil
}

// blankSQL reports whether s holds no statement: only whitespace,
// semicolons and comments.
func blankSQL(s string) bool {
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == ';':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := -1
			for j := i + 2; j+1 < len(s); j++ {
				if s[j] == '*' && s[j+1] == '/' {
					end = j + 2
					break
				}
			}
			if end < 0 {
				return true // an unterminated comment runs to the end
			}
			i = end
		default:
			return false
		}
	}
	return true
}

// stmtCache keeps prepared user statements by SQL text, so a hot query is
// compiled once per connection.
type stmtCache struct {
	m map[string]*cachedStmt
}

type cachedStmt struct {
	s     *sqlite3.Stmt
	inUse bool
	cols  []string // column names, valid while the statement was not re-prepared
	prep  int      // SQLITE_STMTSTATUS_REPREPARE when cols was read
}

// columns returns the column names of s, from the cache when s is cached
// and SQLite has not re-prepared it since (a schema change can alter them).
// The slice is shared: callers must not modify it.
func (c *stmtCache) columns(key string, s *sqlite3.Stmt) []string {
	e := c.m[key]
	if key == "" || e == nil || e.s != s {
		return columns(s)
	}
	n := s.Status(sqlite3.STMTSTATUS_REPREPARE, false)
	if e.cols == nil || e.prep != n {
		e.cols, e.prep = columns(s), n
	}
	return e.cols
}

const stmtCacheSize = 64

func (c *stmtCache) get(q string) *sqlite3.Stmt {
	e := c.m[q]
	if e == nil || e.inUse {
		return nil
	}
	e.inUse = true
	return e.s
}

// put adds a statement in use; it reports false when the cache is full of
// statements in use (or q is cached already), and the caller owns s.
func (c *stmtCache) put(q string, s *sqlite3.Stmt) bool {
	if c.m == nil {
		c.m = make(map[string]*cachedStmt)
	}
	if _, ok := c.m[q]; ok {
		return false
	}
	if len(c.m) >= stmtCacheSize {
		evicted := false
		for k, e := range c.m {
			if !e.inUse {
				e.s.Close()
				delete(c.m, k)
				evicted = true
				break
			}
		}
		if !evicted {
			return false
		}
	}
	c.m[q] = &cachedStmt{s: s, inUse: true}
	return true
}

func (c *stmtCache) release(q string, s *sqlite3.Stmt) {
	s.Reset() // bindings stay; every use binds all parameters again
	if e := c.m[q]; e != nil && e.s == s {
		e.inUse = false
		return
	}
	s.Close()
}

func (c *stmtCache) closeAll() {
	for _, e := range c.m {
		e.s.Close()
	}
	c.m = nil
}
