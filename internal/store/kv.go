package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/durable-go/durable/internal/codec"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// Entry is one KV pair: the key and its stored (encoded) value.
type Entry struct {
	Key   string
	Value []byte
}

// ListOptions select a range of keys for List. Keys are ordered by their
// UTF-8 bytes. Start is inclusive, StartAfter exclusive (not both), End
// exclusive; Prefix keeps keys that start with it; Reverse lists in
// descending order (the bounds keep their meaning); Limit > 0 caps the
// count.
type ListOptions struct {
	Start, StartAfter, End, Prefix string
	Reverse                        bool
	Limit                          int
}

// absent reports whether the object has no database yet: reads answer
// "nothing" without creating one.
func (o *Object) absent() (bool, error) {
	if !o.inTurn {
		return false, errNotInTurn
	}
	if o.turnFailed != nil {
		return false, o.turnFailed
	}
	if o.conn != nil {
		return false, nil
	}
	if !o.statted {
		ok, err := o.st.fs.Access(o.path, vfs.ACCESS_EXISTS)
		if err != nil {
			return false, fmt.Errorf("store: %s/%s: %w", o.ns, o.id, err)
		}
		o.exists, o.statted = ok, true
	}
	return !o.exists, nil
}

func checkKey(key string) error {
	if len(key) > MaxKeyBytes {
		return limitError("KV key size limit (%d bytes): the key is %d bytes", MaxKeyBytes, len(key))
	}
	return nil
}

func checkKeys(n int) error {
	if n > MaxKeysPerCall {
		return limitError("keys per call limit (%d): %d keys given", MaxKeysPerCall, n)
	}
	return nil
}

// Get decodes the value stored at key into dst and reports whether the key
// exists.
func (o *Object) Get(key string, dst any) (bool, error) {
	b, ok, err := o.GetRaw(key)
	if err != nil || !ok {
		return ok, err
	}
	if err := codec.Unmarshal(b, dst); err != nil {
		return true, fmt.Errorf("store: get %q: %w", key, err)
	}
	return true, nil
}

// GetRaw returns the stored (encoded) value at key.
func (o *Object) GetRaw(key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if absent, err := o.absent(); absent || err != nil {
		return nil, false, err
	}
	if err := o.ensure(); err != nil {
		return nil, false, err
	}
	return o.getLocked(key)
}

func (o *Object) getLocked(key string) ([]byte, bool, error) {
	s, err := o.conn.lazy(o, &o.conn.kvGet, sqlKVGet)
	if err != nil {
		return nil, false, err
	}
	o.trusted = true
	defer func() { o.trusted = false }()
	s.BindText(1, key)
	defer s.Reset()
	o.rowsRead++ // a read of one key is a row read, found or not
	if !s.Step() {
		if err := s.Err(); err != nil {
			return nil, false, fmt.Errorf("store: get %q: %w", key, o.sqlError(err))
		}
		return nil, false, nil
	}
	return s.ColumnBlob(0, []byte{}), true, nil
}

// GetMany returns the stored values of the keys that exist.
func (o *Object) GetMany(keys []string) (map[string][]byte, error) {
	if err := checkKeys(len(keys)); err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
	}
	out := make(map[string][]byte, len(keys))
	if absent, err := o.absent(); absent || err != nil {
		return out, err
	}
	if err := o.ensure(); err != nil {
		return nil, err
	}
	for _, k := range keys {
		b, ok, err := o.getLocked(k)
		if err != nil {
			return nil, err
		}
		if ok {
			out[k] = b
		}
	}
	return out, nil
}

// encodeEntry encodes v for key and checks the size limit.
func encodeEntry(buf []byte, key string, v any) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	enc, err := codec.Append(buf, v)
	if err != nil {
		return nil, fmt.Errorf("store: put %q: %w", key, err)
	}
	if n := len(key) + len(enc) - 1; n > MaxEntryBytes {
		return nil, limitError("KV entry size limit (%d bytes for key plus value): %q is %d bytes", MaxEntryBytes, key, n)
	}
	return enc, nil
}

// Put stores v at key.
func (o *Object) Put(key string, v any) error {
	enc, err := encodeEntry(nil, key, v)
	if err != nil {
		return err
	}
	if err := o.ensure(); err != nil {
		return err
	}
	return o.putLocked(key, enc)
}

func (o *Object) putLocked(key string, enc []byte) error {
	s, err := o.conn.lazy(o, &o.conn.kvPut, sqlKVPut)
	if err != nil {
		return err
	}
	o.userWrote = true
	o.trusted = true
	defer func() { o.trusted = false }()
	s.BindText(1, key)
	s.BindBlob(2, enc)
	if err := s.Exec(); err != nil {
		return fmt.Errorf("store: put %q: %w", key, o.sqlError(err))
	}
	o.rowsWritten++
	return nil
}

// PutMany stores every entry, atomically: all or nothing.
func (o *Object) PutMany(entries map[string]any) error {
	if err := checkKeys(len(entries)); err != nil {
		return err
	}
	encoded := make(map[string][]byte, len(entries))
	for k, v := range entries {
		enc, err := encodeEntry(nil, k, v)
		if err != nil {
			return err
		}
		encoded[k] = enc
	}
	if err := o.ensure(); err != nil {
		return err
	}
	return o.atomically(func() error {
		for k, enc := range encoded {
			if err := o.putLocked(k, enc); err != nil {
				return err
			}
		}
		return nil
	})
}

// atomically runs fn inside the runtime's operation savepoint: if fn fails,
// nothing it wrote remains.
func (o *Object) atomically(fn func() error) error {
	dc := o.conn
	if err := dc.runLazy(o, &dc.opSavepoint, sqlOpSavepoint); err != nil {
		return o.sqlError(err)
	}
	if err := fn(); err != nil {
		if o.conn != dc {
			return err // the storage failed and was reset under fn
		}
		if rerr := dc.runLazy(o, &dc.opRollbackTo, sqlOpRollbackTo); rerr == nil {
			dc.runLazy(o, &dc.opRelease, sqlOpRelease)
		}
		return err
	}
	if err := dc.runLazy(o, &dc.opRelease, sqlOpRelease); err != nil {
		return o.sqlError(err)
	}
	return nil
}

// Delete removes the keys and returns how many existed.
func (o *Object) Delete(keys ...string) (int, error) {
	if err := checkKeys(len(keys)); err != nil {
		return 0, err
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return 0, err
		}
	}
	if absent, err := o.absent(); absent || err != nil || len(keys) == 0 {
		return 0, err
	}
	if err := o.ensure(); err != nil {
		return 0, err
	}
	n := 0
	err := o.atomically(func() error {
		s, err := o.conn.lazy(o, &o.conn.kvDel, sqlKVDel)
		if err != nil {
			return err
		}
		o.userWrote = true
		o.trusted = true
		defer func() { o.trusted = false }()
		for _, k := range keys {
			s.BindText(1, k)
			if err := s.Exec(); err != nil {
				return fmt.Errorf("store: delete %q: %w", k, o.sqlError(err))
			}
			n += int(o.conn.c.Changes())
		}
		return nil
	})
	o.rowsWritten += int64(n)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// listShape names one of List's prepared statements.
type listShape struct {
	lower   byte // 0 none, 1 >=, 2 >
	upper   bool
	reverse bool
}

// List returns the entries in a key range, in key order (or reverse).
func (o *Object) List(opts ListOptions) ([]Entry, error) {
	if opts.Start != "" && opts.StartAfter != "" {
		return nil, errors.New("store: List: Start and StartAfter cannot both be set")
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("store: List: negative Limit %d", opts.Limit)
	}
	// Work out the tightest bounds.
	var sh listShape
	var lo, hi string
	switch {
	case opts.StartAfter != "":
		sh.lower, lo = 2, opts.StartAfter
	case opts.Start != "":
		sh.lower, lo = 1, opts.Start
	}
	if opts.Prefix != "" && (sh.lower == 0 || opts.Prefix > lo) {
		sh.lower, lo = 1, opts.Prefix
	}
	if opts.End != "" {
		sh.upper, hi = true, opts.End
	}
	if succ, ok := prefixEnd(opts.Prefix); opts.Prefix != "" && ok && (!sh.upper || succ < hi) {
		sh.upper, hi = true, succ
	}
	sh.reverse = opts.Reverse
	if absent, err := o.absent(); absent || err != nil {
		return []Entry{}, err
	}
	if sh.upper && sh.lower != 0 && (lo > hi || lo == hi) {
		return []Entry{}, nil
	}
	if err := o.ensure(); err != nil {
		return nil, err
	}
	s, err := o.listStmt(sh)
	if err != nil {
		return nil, err
	}
	o.trusted = true
	defer func() { o.trusted = false }()
	defer s.Reset()
	i := 1
	if sh.lower != 0 {
		s.BindText(i, lo)
		i++
	}
	if sh.upper {
		s.BindText(i, hi)
		i++
	}
	limit := int64(-1)
	if opts.Limit > 0 {
		limit = int64(opts.Limit)
	}
	s.BindInt64(i, limit)
	out := []Entry{}
	for s.Step() {
		out = append(out, Entry{Key: s.ColumnText(0), Value: s.ColumnBlob(1, []byte{})})
	}
	o.rowsRead += int64(len(out))
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("store: list: %w", o.sqlError(err))
	}
	return out, nil
}

func (o *Object) listStmt(sh listShape) (*sqlite3.Stmt, error) {
	dc := o.conn
	if s := dc.list[sh]; s != nil {
		return s, nil
	}
	var q strings.Builder
	q.WriteString("SELECT key, value FROM _durable_kv")
	var conds []string
	switch sh.lower {
	case 1:
		conds = append(conds, "key >= ?")
	case 2:
		conds = append(conds, "key > ?")
	}
	if sh.upper {
		conds = append(conds, "key < ?")
	}
	if len(conds) > 0 {
		q.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	if sh.reverse {
		q.WriteString(" ORDER BY key DESC")
	} else {
		q.WriteString(" ORDER BY key")
	}
	q.WriteString(" LIMIT ?")
	o.trusted = true
	s, _, err := dc.c.PrepareFlags(q.String(), sqlite3.PREPARE_PERSISTENT)
	o.trusted = false
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	if dc.list == nil {
		dc.list = make(map[listShape]*sqlite3.Stmt)
	}
	dc.list[sh] = s
	return s, nil
}

// prefixEnd returns the smallest string greater than every string with the
// prefix p; ok is false when there is none (p is all 0xff bytes).
func prefixEnd(p string) (string, bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// DeleteAll removes every KV entry, every user table (with its indexes,
// triggers and views) and the alarm, atomically.
func (o *Object) DeleteAll() error {
	if absent, err := o.absent(); absent || err != nil {
		return err
	}
	if err := o.ensure(); err != nil {
		return err
	}
	o.userWrote = true
	return o.atomically(func() error {
		o.trusted = true
		defer func() { o.trusted = false }()
		c := o.conn.c
		var drops []string
		s, _, err := c.Prepare(`SELECT type, name FROM sqlite_schema
			WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
			AND name NOT LIKE '\_durable\_%' ESCAPE '\'`)
		if err != nil {
			return fmt.Errorf("store: delete all: %w", err)
		}
		for s.Step() {
			drops = append(drops, fmt.Sprintf("DROP %s IF EXISTS %s", strings.ToUpper(s.ColumnText(0)), quoteIdent(s.ColumnText(1))))
		}
		err = s.Err()
		s.Close()
		if err != nil {
			return fmt.Errorf("store: delete all: %w", err)
		}
		// Dropping a referenced table runs an implicit DELETE that checks
		// foreign keys; with every table going, defer the checks.
		stmts := append([]string{"PRAGMA defer_foreign_keys=ON"}, drops...)
		stmts = append(stmts,
			"DELETE FROM _durable_kv",
			"DELETE FROM _durable_alarm",
			"PRAGMA defer_foreign_keys=OFF")
		if hasSequence(c) {
			stmts = append(stmts, "DELETE FROM sqlite_sequence")
		}
		for _, q := range stmts {
			if err := c.Exec(q); err != nil {
				return fmt.Errorf("store: delete all: %s: %w", q, err)
			}
		}
		o.alarmDel = true
		return nil
	})
}

func hasSequence(c *sqlite3.Conn) bool {
	s, _, err := c.Prepare("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'")
	if err != nil {
		return false
	}
	defer s.Close()
	return s.Step()
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// DatabaseSize returns the bytes the object's database holds: its pages
// plus its WAL.
func (o *Object) DatabaseSize() (int64, error) {
	if absent, err := o.absent(); absent || err != nil {
		return 0, err
	}
	if err := o.ensure(); err != nil {
		return 0, err
	}
	s, err := o.conn.lazy(o, &o.conn.pageCount, sqlPageCount)
	if err != nil {
		return 0, err
	}
	pages, err := o.readInt(s)
	if err != nil {
		return 0, err
	}
	size := pages * o.conn.pageSize
	if w := o.conn.liveWAL(o); w != nil {
		if n, err := w.Size(); err == nil {
			size += n
		}
	}
	return size, nil
}

func (o *Object) readInt(s *sqlite3.Stmt) (int64, error) {
	o.trusted = true
	defer func() { o.trusted = false }()
	defer s.Reset()
	if !s.Step() {
		return 0, fmt.Errorf("store: %s: %v", s.SQL(), s.Err())
	}
	return s.ColumnInt64(0), nil
}

// Transaction runs fn as a savepoint of the turn: if fn returns an error
// (returned unchanged) or panics, what it wrote is rolled back. Calls nest.
func (o *Object) Transaction(fn func() error) (err error) {
	if err := o.TxBegin(); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			o.TxEnd(false)
			panic(p)
		}
	}()
	if err := fn(); err != nil {
		o.TxEnd(false)
		return err
	}
	return o.TxEnd(true)
}

// TxBegin opens a nested transaction (a savepoint) in the turn. Every
// TxBegin needs a TxEnd. The runtime uses the pair so that the storage
// lock is not held while the user's function runs.
func (o *Object) TxBegin() error {
	if err := o.ensure(); err != nil {
		return err
	}
	if err := o.conn.runLazy(o, &o.conn.txSavepoint, sqlTxSavepoint); err != nil {
		return o.sqlError(err)
	}
	o.txDepth++
	o.txConns = append(o.txConns, o.conn)
	return nil
}

// TxEnd closes the innermost transaction: keep its writes (commit) or roll
// them back.
func (o *Object) TxEnd(commit bool) error {
	if len(o.txConns) == 0 {
		return errors.New("store: TxEnd without TxBegin")
	}
	dc := o.txConns[len(o.txConns)-1]
	o.txConns = o.txConns[:len(o.txConns)-1]
	if o.txDepth > 0 {
		o.txDepth--
	}
	if o.conn != dc || !o.txnOpen {
		// The storage failed and was reset, or SQLite rolled the batch
		// back, under the transaction: nothing to release.
		return o.turnFailedOr(errors.New("store: the storage was reset during the transaction"))
	}
	if !commit {
		if rerr := dc.runLazy(o, &dc.txRollbackTo, sqlTxRollbackTo); rerr == nil {
			dc.runLazy(o, &dc.txRelease, sqlTxRelease)
		}
		return nil
	}
	if err := dc.runLazy(o, &dc.txRelease, sqlTxRelease); err != nil {
		return o.sqlError(err)
	}
	return nil
}

func (o *Object) turnFailedOr(err error) error {
	if o.turnFailed != nil {
		return o.turnFailed
	}
	return err
}
