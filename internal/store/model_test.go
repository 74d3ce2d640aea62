package store

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/codec"
	"github.com/durable-go/durable/internal/gate"
)

// model is what the object's storage should hold: KV entries and the rows
// of one user table.
type model struct {
	kv   map[string]string
	rows map[int64]string
}

func (m model) clone() model {
	return model{kv: maps.Clone(m.kv), rows: maps.Clone(m.rows)}
}

var (
	errInjected = errors.New("injected turn failure")
	errUnread   = errors.New("the turn left an Exec error unread")
)

// TestObject_RandomOpsAgainstModel runs random sequences of SQL and KV
// operations in random turns (some failing, some with durability points,
// several per batch) and checks every read, and the whole state after each
// close and reopen, against an in-memory model.
func TestObject_RandomOpsAgainstModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 42))
	dir := t.TempDir()
	turns := 1500
	if testing.Short() {
		turns = 300
	}

	open := func() (*Store, *Object) {
		st, err := Open(Config{Dir: dir, CheckpointPages: 5, MaxBatchTurns: 1 + rng.IntN(8)})
		if err != nil {
			t.Fatal(err)
		}
		o, err := st.Acquire("MODEL", "obj")
		if err != nil {
			t.Fatal(err)
		}
		return st, o
	}
	st, o := open()
	defer func() { st.Close() }()

	committed := model{kv: map[string]string{}, rows: map[int64]string{}}
	var promises []*gate.Promise
	for i := 0; i < turns; i++ {
		if rng.IntN(100) == 0 {
			// Close and reopen: everything acknowledged must be there.
			o.Commit()
			for _, p := range promises {
				waitDurable(t, p)
			}
			promises = nil
			o.Release()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			st, o = open()
			checkWhole(t, o, committed)
		}
		work := committed.clone()
		if err := o.Begin(); err != nil {
			t.Fatal(err)
		}
		terr := runRandomTurn(t, rng, o, &work, &committed)
		var p *gate.Promise
		var err error
		if terr == errUnread {
			p, err = o.End(nil)
			if err == nil || !strings.Contains(err.Error(), "NOT NULL") {
				t.Fatalf("turn %d with an unread Exec error: End = %v", i, err)
			}
		} else {
			p, err = o.End(terr)
			if !errors.Is(err, terr) {
				t.Fatalf("turn %d: End = %v, want %v", i, err, terr)
			}
		}
		if err == nil {
			committed = work
		}
		promises = append(promises, p)
		if rng.IntN(3) == 0 {
			o.Commit()
		}
	}
	o.Commit()
	for _, p := range promises {
		waitDurable(t, p)
	}
	checkWhole(t, o, committed)
}

// runRandomTurn performs 1–6 random operations, checking reads against
// work (the model including this turn's writes so far). A durability point
// moves work into *committed, since a later failure no longer undoes it.
func runRandomTurn(t *testing.T, rng *rand.Rand, o *Object, work, committed *model) error {
	if err := o.Exec("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").Err(); err != nil {
		t.Fatal(err)
	}
	key := func() string {
		alphabet := []string{"a", "b", "\xff", "é", "/"}
		var sb strings.Builder
		for n := rng.IntN(4); n > 0; n-- {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return sb.String()
	}
	val := func() string { return fmt.Sprintf("v%d", rng.IntN(1000)) }
	for n := 1 + rng.IntN(6); n > 0; n-- {
		switch op := rng.IntN(14); op {
		case 0, 1:
			k, v := key(), val()
			if err := o.Put(k, v); err != nil {
				t.Fatal(err)
			}
			work.kv[k] = v
		case 2:
			m := map[string]any{}
			for j := rng.IntN(4); j >= 0; j-- {
				k, v := key(), val()
				m[k] = v
			}
			if err := o.PutMany(m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				work.kv[k] = v.(string)
			}
		case 3:
			ks := []string{key(), key()}
			n, err := o.Delete(ks...)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, k := range slices.Compact(slices.Sorted(slices.Values(ks))) {
				if _, ok := work.kv[k]; ok {
					want++
					delete(work.kv, k)
				}
			}
			if n != want {
				t.Fatalf("Delete(%q) = %d, model says %d", ks, n, want)
			}
		case 4:
			k := key()
			var got string
			ok, err := o.Get(k, &got)
			want, wok := work.kv[k]
			if err != nil || ok != wok || got != want {
				t.Fatalf("Get(%q) = %q %v %v, model %q %v", k, got, ok, err, want, wok)
			}
		case 5:
			opts := ListOptions{Prefix: key(), Reverse: rng.IntN(2) == 0, Limit: rng.IntN(4)}
			if rng.IntN(2) == 0 {
				opts.Start = key()
			} else {
				opts.StartAfter = key()
			}
			if rng.IntN(2) == 0 {
				opts.End = key()
			}
			checkList(t, o, work, opts)
		case 6, 7:
			k, v := int64(rng.IntN(20)), val()
			if err := o.Exec("INSERT OR REPLACE INTO t VALUES (?, ?)", k, v).Err(); err != nil {
				t.Fatal(err)
			}
			work.rows[k] = v
		case 8:
			k := int64(rng.IntN(20))
			c := o.Exec("DELETE FROM t WHERE k = ?", k)
			if err := c.Err(); err != nil {
				t.Fatal(err)
			}
			_, had := work.rows[k]
			if (c.RowsWritten() == 1) != had {
				t.Fatalf("DELETE k=%d wrote %d rows; model had it: %v", k, c.RowsWritten(), had)
			}
			delete(work.rows, k)
		case 9:
			suffix := val()
			if err := o.Exec("UPDATE t SET v = v || ? WHERE k % 3 = 0", suffix).Err(); err != nil {
				t.Fatal(err)
			}
			for k, v := range work.rows {
				if k%3 == 0 {
					work.rows[k] = v + suffix
				}
			}
		case 10:
			checkRows(t, o, work)
		case 11:
			// A transaction that fails rolls back alone.
			before := work.clone()
			fail := rng.IntN(2) == 0
			err := o.Transaction(func() error {
				k, v := key(), val()
				if err := o.Put(k, v); err != nil {
					return err
				}
				work.kv[k] = v
				r := int64(rng.IntN(20))
				if err := o.Exec("INSERT OR REPLACE INTO t VALUES (?, ?)", r, v).Err(); err != nil {
					return err
				}
				work.rows[r] = v
				if fail {
					return errInjected
				}
				return nil
			})
			if fail {
				if err != errInjected {
					t.Fatalf("Transaction = %v", err)
				}
				*work = before
			} else if err != nil {
				t.Fatal(err)
			}
		case 12:
			if rng.IntN(4) == 0 {
				if err := o.DeleteAll(); err != nil {
					t.Fatal(err)
				}
				work.kv, work.rows = map[string]string{}, map[int64]string{}
				if err := o.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").Err(); err != nil {
					t.Fatal(err)
				}
			}
		case 13:
			if rng.IntN(3) == 0 {
				if _, err := o.DurabilityPoint(); err != nil {
					t.Fatal(err)
				}
				*committed = work.clone()
			}
		}
	}
	switch rng.IntN(6) {
	case 0:
		return errInjected
	case 1:
		// An unread Exec error fails the turn too.
		o.Exec("INSERT INTO t VALUES (NULL, NULL)")
		return errUnread
	}
	return nil
}

func checkList(t *testing.T, o *Object, m *model, opts ListOptions) {
	t.Helper()
	got, err := o.List(opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range m.kv {
		if opts.Prefix != "" && !strings.HasPrefix(k, opts.Prefix) ||
			opts.Start != "" && k < opts.Start ||
			opts.StartAfter != "" && k <= opts.StartAfter ||
			opts.End != "" && k >= opts.End {
			continue
		}
		want = append(want, k)
	}
	sort.Strings(want)
	if opts.Reverse {
		slices.Reverse(want)
	}
	if opts.Limit > 0 && len(want) > opts.Limit {
		want = want[:opts.Limit]
	}
	if len(got) != len(want) {
		t.Fatalf("List(%+v) = %d entries, model %d (%q)", opts, len(got), len(want), want)
	}
	for i, e := range got {
		var v string
		if err := codec.Unmarshal(e.Value, &v); err != nil {
			t.Fatal(err)
		}
		if e.Key != want[i] || v != m.kv[e.Key] {
			t.Fatalf("List(%+v)[%d] = %q=%q, model %q=%q", opts, i, e.Key, v, want[i], m.kv[want[i]])
		}
	}
}

func checkRows(t *testing.T, o *Object, m *model) {
	t.Helper()
	rows, err := o.Exec("SELECT k, v FROM t ORDER BY k").Raw()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(m.rows) {
		t.Fatalf("table has %d rows, model %d", len(rows), len(m.rows))
	}
	for _, r := range rows {
		if m.rows[r[0].(int64)] != r[1].(string) {
			t.Fatalf("row %v, model %q", r, m.rows[r[0].(int64)])
		}
	}
}

// checkWhole compares the object's whole state with the model in one turn.
func checkWhole(t *testing.T, o *Object, m model) {
	t.Helper()
	mustTurn(t, o, func() error {
		checkList(t, o, &m, ListOptions{})
		if err := o.Exec("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)").Err(); err != nil {
			return err
		}
		checkRows(t, o, &m)
		var ok string
		if err := o.Exec("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("integrity_check = %q %v", ok, err)
		}
		return nil
	})
}
