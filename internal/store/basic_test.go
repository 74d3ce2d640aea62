package store

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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

// A new object's database is written from the template: a WAL-mode file
// with the internal tables, no rollback journal left, usable at once.
func TestObject_CreatedFromTemplate(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "fresh1")
	mustTurn(t, o, func() error { return o.Put("k", "v") })
	path := st.Path("NS", "fresh1")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 100 || string(b[:16]) != "SQLite format 3\x00" || b[18] != 2 || b[19] != 2 {
		t.Fatalf("the new database's header is not a WAL-mode SQLite header: % x", b[:min(len(b), 20)])
	}
	if _, err := os.Stat(path + "-journal"); !os.IsNotExist(err) {
		t.Errorf("a rollback journal was left beside the new database: %v", err)
	}
	if !bytes.Equal(b, st.template) { // the write went to the WAL
		t.Errorf("the file (%d bytes) is not the template (%d bytes)", len(b), len(st.template))
	}
	mustTurn(t, o, func() error {
		var s string
		if ok, err := o.Get("k", &s); !ok || err != nil || s != "v" {
			t.Errorf("Get = %q %v %v", s, ok, err)
		}
		return nil
	})
}

// A ".new" file a crash left beside a database that was never renamed into
// place is overwritten by the next creation, and none is left behind.
func TestObject_CreateOverStaleNewFile(t *testing.T) {
	st := mustStore(t)
	path := st.Path("NS", "stale1")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := mustObject(t, st, "NS", "stale1")
	mustTurn(t, o, func() error { return o.Put("k", "v") })
	if _, err := os.Stat(path + ".new"); !os.IsNotExist(err) {
		t.Errorf("the .new file is still there: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, st.template) {
		t.Errorf("the database is not the template: %d bytes, %v", len(b), err)
	}
}

// The store opens without a writable TMPDIR: the template is built in the
// data directory, and nothing of it is left there.
func TestStore_OpensWithoutATempDir(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "does-not-exist"))
	dir := t.TempDir()
	st := mustStore(t, Config{Dir: dir})
	o := mustObject(t, st, "NS", "t1")
	mustTurn(t, o, func() error { return o.Put("k", 1) })
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".template") {
			t.Errorf("%s left in the data directory", e.Name())
		}
	}
}
