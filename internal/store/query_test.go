package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestQueryReadOnly(t *testing.T) {
	st := mustStore(t)
	empty := mustObject(t, st, "NS", "q0")
	mustTurn(t, empty, func() error {
		if _, _, _, err := empty.QueryReadOnly(context.Background(), "SELECT 1", 10); !errors.Is(err, ErrNoData) {
			t.Errorf("an object without a database: %v, want ErrNoData", err)
		}
		return nil
	})
	o := mustObject(t, st, "NS", "q1")
	mustTurn(t, o, func() error {
		if err := o.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)").Err(); err != nil {
			return err
		}
		return o.Exec("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')").Err()
	})
	ctx := context.Background()
	mustTurn(t, o, func() error {
		cols, rows, more, err := o.QueryReadOnly(ctx, "SELECT k, v FROM t ORDER BY k", 2)
		if err != nil || len(cols) != 2 || cols[1] != "v" || len(rows) != 2 || !more || rows[1][1] != "b" {
			t.Errorf("SELECT limited to 2: %v %v %v %v", cols, rows, more, err)
		}
		_, rows, more, err = o.QueryReadOnly(ctx, "SELECT count(*) FROM t", 10)
		if err != nil || more || rows[0][0] != int64(3) {
			t.Errorf("count: %v %v %v", rows, more, err)
		}
		for q, want := range map[string]error{
			"DELETE FROM t":                  ErrWouldWrite,
			"INSERT INTO t VALUES (9, 'z')":  ErrWouldWrite,
			"PRAGMA user_version = 7":        nil,           // refused by the authorizer
			"PRAGMA foreign_keys = OFF":      ErrWouldWrite, // changes the connection
			"PRAGMA defer_foreign_keys = ON": ErrWouldWrite,
			"PRAGMA optimize":                ErrWouldWrite,
			// Table-valued pragmas prepare their statement as rows are
			// read: ANALYZE would write sqlite_stat1 (found in review).
			"SELECT * FROM pragma_optimize":          ErrWouldWrite,
			"SELECT * FROM pragma_optimize(0x10002)": ErrWouldWrite,
			"COMMIT":                                 nil, // transaction control
			"SAVEPOINT x":                            nil,
			"ROLLBACK":                               nil,
			"SELECT 1; DELETE FROM t":                nil, // refused: two statements
			"SELECT * FROM _durable_kv":              nil, // refused by the authorizer
			"SELECT * FROM t WHERE k = ?":            nil, // refused: parameters
			"":                                       nil, // refused: no statement
		} {
			_, _, _, err := o.QueryReadOnly(ctx, q, 10)
			if err == nil || (want != nil && !errors.Is(err, want)) {
				t.Errorf("%q: %v, want a refusal (%v)", q, err, want)
			}
		}
		for _, q := range []string{"PRAGMA table_info(t)", "PRAGMA foreign_keys", "SELECT name FROM sqlite_schema"} {
			if _, _, _, err := o.QueryReadOnly(ctx, q, 10); err != nil {
				t.Errorf("%q: %v, want it answered", q, err)
			}
		}
		// A runaway query stops when its context does.
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, _, err = o.QueryReadOnly(tctx, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c", 10)
		if err == nil || time.Since(start) > 5*time.Second {
			t.Errorf("a runaway query: %v after %v, want it stopped", err, time.Since(start))
		}
		return nil
	})
	// Nothing was written by the refused statements.
	mustTurn(t, o, func() error {
		var n int64
		if err := o.Exec("SELECT count(*) FROM t").Scan(&n); err != nil || n != 3 {
			t.Errorf("rows after the refused writes: %d %v, want 3", n, err)
		}
		o.trusted = true
		defer func() { o.trusted = false }()
		if err := o.Exec("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_stat%'").Scan(&n); err != nil || n != 0 {
			t.Errorf("statistics tables after the refused writes: %d %v, want none", n, err)
		}
		return nil
	})
}
