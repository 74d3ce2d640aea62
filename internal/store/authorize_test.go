package store

import (
	"errors"
	"strings"
	"testing"
)

func TestAuthorize_Refusals(t *testing.T) {
	inTurn(t, func(o *Object) {
		mustExec(t, o, "CREATE TABLE t (k)")
		refused := []struct{ q, want string }{
			{"SELECT * FROM _durable_kv", "internal"},
			{"SELECT * FROM _DURABLE_KV", "internal"},
			{"INSERT INTO _durable_kv VALUES ('k', x'00')", "internal"},
			{"UPDATE _durable_alarm SET at_ms = 0", "internal"},
			{"DELETE FROM _durable_meta", "internal"},
			{"DROP TABLE _durable_kv", "internal"},
			{"CREATE TABLE _durable_mine (x)", "internal"},
			{"CREATE INDEX i ON _durable_kv(value)", "internal"},
			{"ALTER TABLE _durable_kv ADD COLUMN x", "internal"},
			{"PRAGMA table_info(_durable_kv)", "internal"},
			{"BEGIN", "Transaction"},
			{"COMMIT", "Transaction"},
			{"ROLLBACK", "Transaction"},
			{"SAVEPOINT s", "Transaction"},
			{"RELEASE s", "Transaction"},
			{"ATTACH DATABASE 'x.db' AS x", "ATTACH"},
			{"DETACH DATABASE x", "ATTACH"},
			{"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode"},
			{"PRAGMA synchronous=OFF", "not allowed"},
			{"PRAGMA user_version", "not allowed"},
			{"PRAGMA writable_schema=ON", "not allowed"},
			{"PRAGMA locking_mode=NORMAL", "not allowed"},
			{"CREATE TEMP TABLE tt (x)", "TEMP"},
			{"CREATE TEMP VIEW tv AS SELECT 1", "TEMP"},
		}
		for _, r := range refused {
			err := o.Exec(r.q).Err()
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Errorf("Exec(%q) = %v, want an error mentioning %q", r.q, err, r.want)
			}
		}
		// Views and triggers are authorized where they run.
		mustExec(t, o, "CREATE VIEW v AS SELECT * FROM _durable_kv")
		if err := o.Exec("SELECT * FROM v").Err(); err == nil || !strings.Contains(err.Error(), "internal") {
			t.Errorf("reading a view over an internal table: %v", err)
		}
		mustExec(t, o, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM _durable_kv; END")
		if err := o.Exec("INSERT INTO t VALUES (1)").Err(); err == nil || !strings.Contains(err.Error(), "internal") {
			t.Errorf("firing a trigger that writes an internal table: %v", err)
		}
		mustExec(t, o, "DROP TRIGGER tr; DROP VIEW v")
		if err := o.Exec("BEGIN").Err(); !errors.Is(err, ErrTransactionSQL) {
			t.Errorf("BEGIN: %v, want ErrTransactionSQL", err)
		}
		allowed := []string{
			"SELECT name FROM sqlite_schema",
			"SELECT name FROM sqlite_master",
			"PRAGMA table_info(t)", "PRAGMA table_xinfo(t)", "PRAGMA table_list",
			"PRAGMA index_list(t)", "PRAGMA foreign_key_list(t)",
			"PRAGMA quick_check", "PRAGMA integrity_check",
			"PRAGMA foreign_keys", "PRAGMA foreign_keys=ON", "PRAGMA defer_foreign_keys=ON",
			"PRAGMA optimize",
			"CREATE INDEX ti ON t(k)", "PRAGMA index_info(ti)", "PRAGMA index_xinfo(ti)",
			"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5) SELECT sum(x) FROM c",
			"ANALYZE",
		}
		for _, q := range allowed {
			if err := o.Exec(q).Err(); err != nil {
				t.Errorf("Exec(%q): %v", q, err)
			}
		}
	})
}

// TestAuthorize_RefusalChangesNothing: a refused statement in a
// multi-statement Exec leaves the earlier ones undone, and the internal
// tables keep working for the runtime.
func TestAuthorize_RefusalChangesNothing(t *testing.T) {
	inTurn(t, func(o *Object) {
		if err := o.Put("k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := o.Exec("CREATE TABLE t (x); DELETE FROM _durable_kv").Err(); err == nil {
			t.Fatal("no error")
		}
		if err := o.Exec("SELECT * FROM t").Err(); err == nil || !strings.Contains(err.Error(), "no such table") {
			t.Errorf("table of a refused Exec exists: %v", err)
		}
		var v string
		if ok, err := o.Get("k", &v); !ok || err != nil || v != "v" {
			t.Errorf("KV after refusals: %q %v %v", v, ok, err)
		}
	})
}

// TestAuthorize_ForeignKeysStayOn: foreign keys are enforced, and setting
// the pragma off inside a turn cannot disable them.
func TestAuthorize_ForeignKeysStayOn(t *testing.T) {
	inTurn(t, func(o *Object) {
		mustExec(t, o, "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p REFERENCES p(id))")
		mustExec(t, o, "PRAGMA foreign_keys=OFF")
		if err := o.Exec("INSERT INTO c VALUES (42)").Err(); err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
			t.Errorf("orphan insert: %v, want a foreign key error", err)
		}
	})
}
