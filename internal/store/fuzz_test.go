package store

import (
	"errors"
	"strings"
	"testing"
)

// FuzzExec runs arbitrary SQL with arbitrary arguments through the cursor
// API: it must never panic, never reach the internal tables, and a blank
// query must be reported as such.
func FuzzExec(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "SELECT ?", "CREATE TABLE t (x); INSERT INTO t VALUES (1); SELECT * FROM t",
		"SELECT * FROM _durable_kv", "DELETE FROM _durable_kv", "PRAGMA journal_mode=DELETE",
		"BEGIN", "ATTACH ':memory:' AS m", "-- comment", "/* open comment", ";;;",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<50) SELECT * FROM c",
		"SELECT zeroblob(3000000)", "SELECT printf('%.*c', 3000000, 'x')", "VACUUM",
		"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END", "PRAGMA table_info(_durable_kv)",
		"SELECT * FROM sqlite_schema", "REINDEX", "ANALYZE _durable_kv", "DROP TABLE sqlite_schema",
	} {
		f.Add(s, int64(1), "arg", []byte{1})
	}
	st := mustStore(f)
	o := mustObject(f, st, "FUZZ", "obj")
	mustTurn(f, o, func() error { return o.Put("sentinel", "intact") })
	f.Fuzz(func(t *testing.T, q string, n int64, s string, b []byte) {
		if err := o.Begin(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			p, _ := o.End(errors.New("roll back"))
			o.Commit()
			waitDurable(t, p)
		}()
		for _, args := range [][]any{nil, {n}, {n, s, b}} {
			c := o.Exec(q, args...)
			if err := c.Err(); err == nil {
				for i := 0; i < 1000 && c.Next(); i++ {
					c.Row()
				}
				c.RowsRead()
				c.Close()
			} else if blankSQL(q) && !errors.Is(err, errNoStatement) && len(q) <= MaxSQLBytes {
				t.Fatalf("blank query %q: %v", q, err)
			}
		}
		var v string
		if ok, err := o.Get("sentinel", &v); !ok || err != nil || v != "intact" {
			t.Fatalf("after %q the KV table reads %q %v %v", q, v, ok, err)
		}
		if err := o.Exec("SELECT * FROM _durable_kv").Err(); err == nil || !strings.Contains(err.Error(), "internal") {
			t.Fatalf("after %q the internal table is readable: %v", q, err)
		}
	})
}

// FuzzBlankSQL checks blankSQL against SQLite: what blankSQL calls blank,
// SQLite must find no statement in.
func FuzzBlankSQL(f *testing.F) {
	for _, s := range []string{"", " ", ";", "-- x", "/* x */", "/* x", "--x\n;", "- -", "/", "SELECT 1"} {
		f.Add(s)
	}
	st := mustStore(f)
	o := mustObject(f, st, "FUZZ", "blank")
	mustTurn(f, o, func() error { return o.Exec("SELECT 1").Err() })
	f.Fuzz(func(t *testing.T, s string) {
		if !blankSQL(s) || len(s) > MaxSQLBytes {
			return
		}
		mustTurn(t, o, func() error {
			if err := o.ensure(); err != nil {
				return err
			}
			stmt, _, err := o.conn.c.Prepare(s)
			if stmt != nil {
				stmt.Close()
				t.Fatalf("blankSQL(%q) = true but SQLite found a statement", s)
			}
			_ = err
			return nil
		})
	})
}
