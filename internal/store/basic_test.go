package store

import (
	"os"
	"testing"
)

func TestObject_PutGetAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	st := mustStore(t, Config{Dir: dir})
	o := mustObject(t, st, "NS", "abc123")
	mustTurn(t, o, func() error {
		if err := o.Put("greeting", "hello"); err != nil {
			return err
		}
		c := o.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
		if err := c.Err(); err != nil {
			return err
		}
		return o.Exec("INSERT INTO t VALUES (?, ?)", 1, "one").Err()
	})
	if _, err := os.Stat(st.Path("NS", "abc123")); err != nil {
		t.Fatalf("database file: %v", err)
	}
	o.Release()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := mustStore(t, Config{Dir: dir})
	o2 := mustObject(t, st2, "NS", "abc123")
	mustTurn(t, o2, func() error {
		var s string
		ok, err := o2.Get("greeting", &s)
		if err != nil || !ok || s != "hello" {
			t.Errorf("Get = %q %v %v", s, ok, err)
		}
		var v string
		if err := o2.Exec("SELECT v FROM t WHERE k = ?", 1).Scan(&v); err != nil || v != "one" {
			t.Errorf("SELECT = %q %v", v, err)
		}
		return nil
	})
}
