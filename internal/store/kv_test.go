package store

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/durable-go/durable/internal/codec"
	"github.com/durable-go/durable/internal/errs"
)

func TestKV_GetPutDelete(t *testing.T) {
	inTurn(t, func(o *Object) {
		var s string
		if ok, err := o.Get("missing", &s); ok || err != nil {
			t.Errorf("Get(missing) = %v %v", ok, err)
		}
		type rec struct {
			A int
			B []string
		}
		in := rec{A: 3, B: []string{"x", "y"}}
		for k, v := range map[string]any{"s": "str", "i": int64(42), "raw": []byte{0, 255}, "rec": in, "": "empty key"} {
			if err := o.Put(k, v); err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
		}
		var out rec
		if ok, err := o.Get("rec", &out); !ok || err != nil || !reflect.DeepEqual(out, in) {
			t.Errorf("Get(rec) = %+v %v %v", out, ok, err)
		}
		var raw []byte
		if ok, err := o.Get("raw", &raw); !ok || err != nil || !reflect.DeepEqual(raw, []byte{0, 255}) {
			t.Errorf("Get(raw) = %v %v %v", raw, ok, err)
		}
		var n int64
		if ok, err := o.Get("i", &n); !ok || err != nil || n != 42 {
			t.Errorf("Get(i) = %v %v %v", n, ok, err)
		}
		if err := o.Put("i", int64(43)); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Get("i", &n); err != nil || n != 43 {
			t.Errorf("after overwrite Get(i) = %v %v", n, err)
		}
		// Decoding into the wrong type is an error, not a panic.
		if _, err := o.Get("s", &n); err == nil {
			t.Error("Get(string) into *int64: no error")
		}
		if cnt, err := o.Delete("s", "i", "nope"); err != nil || cnt != 2 {
			t.Errorf("Delete = %d %v, want 2", cnt, err)
		}
		if ok, _ := o.Get("s", &s); ok {
			t.Error("deleted key still there")
		}
		got, err := o.GetMany([]string{"raw", "rec", "s", ""})
		if err != nil || len(got) != 3 {
			t.Fatalf("GetMany = %v %v", got, err)
		}
		var e string
		if err := codec.Unmarshal(got[""], &e); err != nil || e != "empty key" {
			t.Errorf("GetMany value = %q %v", e, err)
		}
	})
}

func TestKV_Limits(t *testing.T) {
	inTurn(t, func(o *Object) {
		k2048 := strings.Repeat("k", MaxKeyBytes)
		if err := o.Put(k2048, 1); err != nil {
			t.Errorf("2,048-byte key refused: %v", err)
		}
		var v int
		if ok, err := o.Get(k2048, &v); !ok || err != nil || v != 1 {
			t.Errorf("Get 2,048-byte key = %v %v %v", v, ok, err)
		}
		k2049 := k2048 + "k"
		for name, err := range map[string]error{
			"Put":    o.Put(k2049, 1),
			"Get":    second(o.Get(k2049, &v)),
			"Delete": second(o.Delete(k2049)),
			"GetMany": func() error {
				_, err := o.GetMany([]string{k2049})
				return err
			}(),
			"PutMany": o.PutMany(map[string]any{k2049: 1}),
		} {
			if !errors.Is(err, errs.ErrLimit) || !strings.Contains(err.Error(), "key size") {
				t.Errorf("%s with a 2,049-byte key: %v", name, err)
			}
		}
		// key + value ≤ 2 MiB, exactly 2 MiB allowed (the tag not counted).
		key := "big"
		exact := make([]byte, MaxEntryBytes-len(key))
		if err := o.Put(key, exact); err != nil {
			t.Errorf("entry of exactly 2 MiB refused: %v", err)
		}
		if err := o.Put(key, append(exact, 0)); !errors.Is(err, errs.ErrLimit) || !strings.Contains(err.Error(), "entry size") {
			t.Errorf("entry of 2 MiB + 1: %v", err)
		}
		var got []byte
		if _, err := o.Get(key, &got); err != nil || len(got) != len(exact) {
			t.Errorf("big value read back: %d bytes %v", len(got), err)
		}
		keys := make([]string, MaxKeysPerCall+1)
		m := map[string]any{}
		for i := range keys {
			keys[i] = "k" + strings.Repeat("x", i)
			m[keys[i]] = i
		}
		if _, err := o.GetMany(keys); !errors.Is(err, errs.ErrLimit) {
			t.Errorf("GetMany with 129 keys: %v", err)
		}
		if _, err := o.Delete(keys...); !errors.Is(err, errs.ErrLimit) {
			t.Errorf("Delete with 129 keys: %v", err)
		}
		if err := o.PutMany(m); !errors.Is(err, errs.ErrLimit) {
			t.Errorf("PutMany with 129 keys: %v", err)
		}
		if _, err := o.GetMany(keys[:MaxKeysPerCall]); err != nil {
			t.Errorf("GetMany with 128 keys: %v", err)
		}
		if err := o.Put("fn", func() {}); err == nil {
			t.Error("Put of a func: no error")
		}
	})
}

func second[T any](_ T, err error) error { return err }

func TestKV_PutManyIsAtomic(t *testing.T) {
	inTurn(t, func(o *Object) {
		err := o.PutMany(map[string]any{"a": 1, "b": 2, "c": make(chan int)})
		if err == nil {
			t.Fatal("PutMany with an unencodable value: no error")
		}
		if got, _ := o.GetMany([]string{"a", "b", "c"}); len(got) != 0 {
			t.Errorf("PutMany failure left %d keys", len(got))
		}
		if err := o.PutMany(map[string]any{"a": 1, "b": 2}); err != nil {
			t.Fatal(err)
		}
		if got, _ := o.GetMany([]string{"a", "b"}); len(got) != 2 {
			t.Errorf("PutMany stored %d keys, want 2", len(got))
		}
	})
}

func TestKV_List(t *testing.T) {
	inTurn(t, func(o *Object) {
		keys := []string{"a", "ab", "abc", "b", "ba", "c", "\xff", "\xff\xff", "é", "z"}
		for _, k := range keys {
			if err := o.Put(k, k); err != nil {
				t.Fatal(err)
			}
		}
		sorted := append([]string(nil), keys...)
		sort.Strings(sorted) // Go compares strings by bytes: UTF-8 byte order
		cases := []struct {
			opts ListOptions
			want []string
		}{
			{ListOptions{}, sorted},
			{ListOptions{Prefix: "a"}, []string{"a", "ab", "abc"}},
			{ListOptions{Prefix: "ab"}, []string{"ab", "abc"}},
			{ListOptions{Start: "ab", End: "ba"}, []string{"ab", "abc", "b"}},
			{ListOptions{StartAfter: "ab", End: "ba"}, []string{"abc", "b"}},
			{ListOptions{Start: "b", Limit: 2}, []string{"b", "ba"}},
			{ListOptions{Reverse: true, Limit: 3}, []string{"\xff\xff", "\xff", "é"}},
			{ListOptions{Prefix: "a", Reverse: true}, []string{"abc", "ab", "a"}},
			{ListOptions{Prefix: "\xff"}, []string{"\xff", "\xff\xff"}},
			{ListOptions{Prefix: "a", Start: "abb"}, []string{"abc"}},
			{ListOptions{Prefix: "b", End: "b"}, []string{}},
			{ListOptions{Start: "z", End: "a"}, []string{}},
			{ListOptions{Start: "c", End: "c"}, []string{}},
		}
		for _, c := range cases {
			got, err := o.List(c.opts)
			if err != nil {
				t.Fatalf("List(%+v): %v", c.opts, err)
			}
			gotKeys := []string{}
			for _, e := range got {
				gotKeys = append(gotKeys, e.Key)
				var v string
				if err := codec.Unmarshal(e.Value, &v); err != nil || v != e.Key {
					t.Errorf("List value for %q = %q %v", e.Key, v, err)
				}
			}
			if !reflect.DeepEqual(gotKeys, c.want) {
				t.Errorf("List(%+v) = %q, want %q", c.opts, gotKeys, c.want)
			}
		}
		if _, err := o.List(ListOptions{Start: "a", StartAfter: "b"}); err == nil {
			t.Error("List with Start and StartAfter: no error")
		}
		if _, err := o.List(ListOptions{Limit: -1}); err == nil {
			t.Error("List with a negative Limit: no error")
		}
	})
}

func TestKV_DeleteAll(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error {
		mustExec(t, o, `CREATE TABLE parent (id INTEGER PRIMARY KEY);
			CREATE TABLE child (id INTEGER PRIMARY KEY AUTOINCREMENT, p REFERENCES parent(id));
			CREATE INDEX child_p ON child(p);
			CREATE VIEW v AS SELECT * FROM child;
			CREATE TRIGGER tr AFTER INSERT ON parent BEGIN INSERT INTO child (p) VALUES (new.id); END;
			INSERT INTO parent VALUES (1), (2);`)
		if err := o.Put("k", "v"); err != nil {
			return err
		}
		return o.SetAlarmRecord(12345, 0)
	})
	mustTurn(t, o, func() error { return o.DeleteAll() })
	mustTurn(t, o, func() error {
		rows, err := o.Exec("SELECT name FROM sqlite_schema WHERE name NOT LIKE '\\_durable\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'").Raw()
		if err != nil || len(rows) != 0 {
			t.Errorf("schema after DeleteAll: %v %v", rows, err)
		}
		if ok, _ := o.Get("k", new(string)); ok {
			t.Error("KV entry survived DeleteAll")
		}
		if _, _, ok, err := o.AlarmRecord(); ok || err != nil {
			t.Errorf("alarm survived DeleteAll: %v %v", ok, err)
		}
		// The names can be used again.
		return o.Exec("CREATE TABLE parent (x)").Err()
	})
}

func TestKV_DeleteAllRollsBackWithTheTurn(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error {
		mustExec(t, o, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
		return o.Put("k", "v")
	})
	if _, err := turn(t, o, func() error {
		if err := o.DeleteAll(); err != nil {
			return err
		}
		return errors.New("fail after DeleteAll")
	}); err == nil {
		t.Fatal("turn did not fail")
	}
	mustTurn(t, o, func() error {
		var n int
		if err := o.Exec("SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
			t.Errorf("table after failed DeleteAll: %d %v", n, err)
		}
		if ok, _ := o.Get("k", new(string)); !ok {
			t.Error("KV entry lost by a rolled-back DeleteAll")
		}
		return nil
	})
}

func TestKV_DatabaseSize(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error {
		n, err := o.DatabaseSize()
		if err != nil || n != 0 {
			t.Errorf("DatabaseSize of a new object = %d %v, want 0", n, err)
		}
		return nil
	})
	var before int64
	mustTurn(t, o, func() error {
		if err := o.Put("k", make([]byte, 100<<10)); err != nil {
			return err
		}
		var err error
		before, err = o.DatabaseSize()
		return err
	})
	if before < 100<<10 {
		t.Errorf("DatabaseSize after a 100 KiB value = %d", before)
	}
}

// TestObject_ReadOnlyVisitCreatesNoFile: reading a new object, by KV or by
// SQL, leaves nothing on disk.
func TestObject_ReadOnlyVisitCreatesNoFile(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "fresh")
	mustTurn(t, o, func() error {
		if ok, err := o.Get("k", new(string)); ok || err != nil {
			t.Errorf("Get on a new object: %v %v", ok, err)
		}
		if l, err := o.List(ListOptions{}); len(l) != 0 || err != nil {
			t.Errorf("List on a new object: %v %v", l, err)
		}
		var n int
		if err := o.Exec("SELECT count(*) FROM sqlite_schema WHERE name = 'x'").Scan(&n); err != nil {
			t.Errorf("SQL read on a new object: %v", err)
		}
		return nil
	})
	if ok, _ := st.fs.Access(st.Path("NS", "fresh"), 0); ok {
		t.Error("a read-only visit created the database file")
	}
	mustTurn(t, o, func() error { return o.Put("k", "v") })
	if ok, _ := st.fs.Access(st.Path("NS", "fresh"), 0); !ok {
		t.Error("a write did not create the database file")
	}
}

// Rows read and written are counted per statement and per KV call, in the
// platform's billing units, and TakeRows starts the count again.
func TestObject_RowsCounted(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "rows1")
	mustTurn(t, o, func() error {
		if err := o.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY)").Err(); err != nil {
			return err
		}
		o.TakeRows() // the schema is not counted here
		for _, k := range []string{"a", "b", "c"} {
			if err := o.Put(k, 1); err != nil {
				return err
			}
		}
		if r, w := o.TakeRows(); r != 0 || w != 3 {
			t.Errorf("3 puts: read %d written %d, want 0 and 3", r, w)
		}
		o.Get("a", new(int))
		o.Get("missing", new(int))
		o.List(ListOptions{})
		if r, w := o.TakeRows(); r != 2+3 || w != 0 {
			t.Errorf("2 gets and a list of 3: read %d written %d, want 5 and 0", r, w)
		}
		if err := o.Exec("INSERT INTO t VALUES (1), (2), (3), (4), (5)").Err(); err != nil {
			return err
		}
		if r, w := o.TakeRows(); w != 5 || r != 5 {
			t.Errorf("an insert of 5 rows: read %d written %d, want 5 and 5 (a written row counts as read too)", r, w)
		}
		rows, err := o.Exec("SELECT k FROM t").All()
		if err != nil || len(rows) != 5 {
			return fmt.Errorf("select: %v %v", rows, err)
		}
		if r, w := o.TakeRows(); r != 5 || w != 0 {
			t.Errorf("a select of 5 rows: read %d written %d, want 5 and 0", r, w)
		}
		n, err := o.Delete("a", "b", "zz")
		if err != nil || n != 2 {
			return fmt.Errorf("delete: %d %v", n, err)
		}
		if r, w := o.TakeRows(); r != 0 || w != 2 {
			t.Errorf("a delete of 2 existing keys: read %d written %d, want 0 and 2", r, w)
		}
		return nil
	})
}
