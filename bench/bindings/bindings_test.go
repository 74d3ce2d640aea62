// Package bindings compares the three candidate SQLite bindings for
// durable's storage engine on the operations the engine performs: opening an
// existing per-object database, a point read through a prepared statement, a
// one-row turn as a savepoint of a batch, a durable one-row commit, and the
// memory an open connection holds. Every binding runs with the same settings
// as the engine (locking_mode=EXCLUSIVE, journal_mode=WAL, synchronous=FULL).
//
// It is its own module so that the durable module depends only on the binding
// it chose. Run: go test -bench . -benchmem -count 5 | tee out.txt; benchstat out.txt
package bindings

import (
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	mattn "github.com/mattn/go-sqlite3"
	ncruces "github.com/ncruces/go-sqlite3"
	zsqlite "zombiezen.com/go/sqlite"
)

var pragmas = []string{
	"PRAGMA locking_mode=EXCLUSIVE",
	"PRAGMA journal_mode=WAL",
	"PRAGMA synchronous=FULL",
}

const schema = "CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)"

// conn is the part of each binding the benchmarks use.
type conn interface {
	exec(q string) error
	pointRead(k int64) (int64, error)
	update(k, v int64) error
	close() error
}

type binding struct {
	name string
	open func(path string) (conn, error)
}

var bindings = []binding{
	{"mattn", openMattn},
	{"ncruces", openNcruces},
	{"zombiezen", openZombie},
}

func setup(c conn) error {
	for _, p := range pragmas {
		if err := c.exec(p); err != nil {
			return err
		}
	}
	return c.exec(schema)
}

// --- mattn (cgo) ---

type mattnConn struct {
	c     *mattn.SQLiteConn
	read  driver.Stmt
	write driver.Stmt
	dest  []driver.Value
}

func openMattn(path string) (conn, error) {
	d := &mattn.SQLiteDriver{}
	c, err := d.Open("file:" + path)
	if err != nil {
		return nil, err
	}
	m := &mattnConn{c: c.(*mattn.SQLiteConn), dest: make([]driver.Value, 1)}
	if err := setup(m); err != nil {
		return nil, err
	}
	if m.read, err = m.c.Prepare("SELECT v FROM kv WHERE k=?"); err != nil {
		return nil, err
	}
	if m.write, err = m.c.Prepare("UPDATE kv SET v=? WHERE k=?"); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mattnConn) exec(q string) error { _, err := m.c.Exec(q, nil); return err }
func (m *mattnConn) pointRead(k int64) (int64, error) {
	rows, err := m.read.Query([]driver.Value{k})
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if err := rows.Next(m.dest); err != nil {
		return 0, err
	}
	return m.dest[0].(int64), nil
}
func (m *mattnConn) update(k, v int64) error {
	_, err := m.write.Exec([]driver.Value{v, k})
	return err
}
func (m *mattnConn) close() error {
	m.read.Close()
	m.write.Close()
	return m.c.Close()
}

// --- ncruces (wasm2go, pure Go) ---

type ncrucesConn struct {
	c     *ncruces.Conn
	read  *ncruces.Stmt
	write *ncruces.Stmt
}

func openNcruces(path string) (conn, error) {
	c, err := ncruces.Open(path)
	if err != nil {
		return nil, err
	}
	n := &ncrucesConn{c: c}
	if err := setup(n); err != nil {
		return nil, err
	}
	if n.read, _, err = c.Prepare("SELECT v FROM kv WHERE k=?"); err != nil {
		return nil, err
	}
	if n.write, _, err = c.Prepare("UPDATE kv SET v=? WHERE k=?"); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *ncrucesConn) exec(q string) error { return n.c.Exec(q) }
func (n *ncrucesConn) pointRead(k int64) (int64, error) {
	s := n.read
	s.BindInt64(1, k)
	var v int64
	if s.Step() {
		v = s.ColumnInt64(0)
	}
	return v, s.Reset()
}
func (n *ncrucesConn) update(k, v int64) error {
	s := n.write
	s.BindInt64(1, v)
	s.BindInt64(2, k)
	return s.Exec()
}
func (n *ncrucesConn) close() error {
	n.read.Close()
	n.write.Close()
	return n.c.Close()
}

// --- zombiezen (modernc, transpiled C, pure Go) ---

type zombieConn struct {
	c     *zsqlite.Conn
	read  *zsqlite.Stmt
	write *zsqlite.Stmt
}

func openZombie(path string) (conn, error) {
	c, err := zsqlite.OpenConn(path, zsqlite.OpenReadWrite|zsqlite.OpenCreate)
	if err != nil {
		return nil, err
	}
	z := &zombieConn{c: c}
	if err := setup(z); err != nil {
		return nil, err
	}
	if z.read, err = c.Prepare("SELECT v FROM kv WHERE k=?"); err != nil {
		return nil, err
	}
	if z.write, err = c.Prepare("UPDATE kv SET v=? WHERE k=?"); err != nil {
		return nil, err
	}
	return z, nil
}

func (z *zombieConn) exec(q string) error {
	s, _, err := z.c.PrepareTransient(q)
	if err != nil {
		return err
	}
	defer s.Finalize()
	for {
		row, err := s.Step()
		if err != nil {
			return err
		}
		if !row {
			return nil
		}
	}
}
func (z *zombieConn) pointRead(k int64) (int64, error) {
	s := z.read
	s.BindInt64(1, k)
	row, err := s.Step()
	var v int64
	if row {
		v = s.ColumnInt64(0)
	}
	if rerr := s.Reset(); err == nil {
		err = rerr
	}
	return v, err
}
func (z *zombieConn) update(k, v int64) error {
	s := z.write
	s.BindInt64(1, v)
	s.BindInt64(2, k)
	_, err := s.Step()
	if rerr := s.Reset(); err == nil {
		err = rerr
	}
	return err
}
func (z *zombieConn) close() error {
	z.read.Finalize()
	z.write.Finalize()
	return z.c.Close()
}

// --- benchmarks ---

func seeded(b *testing.B, bd binding, rows int) (conn, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "obj.sqlite")
	c, err := bd.open(path)
	if err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString("BEGIN;")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&sb, "INSERT OR REPLACE INTO kv VALUES (%d, %d);", i, i)
	}
	sb.WriteString("COMMIT")
	for _, q := range strings.Split(sb.String(), ";") {
		if err := c.exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return c, path
}

func BenchmarkPointRead(b *testing.B) {
	for _, bd := range bindings {
		b.Run(bd.name, func(b *testing.B) {
			c, _ := seeded(b, bd, 1000)
			defer c.close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.pointRead(int64(i % 1000)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen opens an existing database with the engine's pragmas, reads
// one row (which takes the exclusive lock and recovers the WAL), and closes.
func BenchmarkOpen(b *testing.B) {
	for _, bd := range bindings {
		b.Run(bd.name, func(b *testing.B) {
			c, path := seeded(b, bd, 100)
			c.close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c, err := bd.open(path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.pointRead(1); err != nil {
					b.Fatal(err)
				}
				c.close()
			}
		})
	}
}

// BenchmarkSavepointTurn measures the CPU cost of one turn as the engine runs
// it: SAVEPOINT, a one-row UPDATE, RELEASE, inside a batch transaction of 64
// turns whose COMMIT is not synced (synchronous=OFF for this benchmark only),
// so the figure is the binding's overhead, not the disk's.
func BenchmarkSavepointTurn(b *testing.B) {
	for _, bd := range bindings {
		b.Run(bd.name, func(b *testing.B) {
			c, _ := seeded(b, bd, 100)
			defer c.close()
			if err := c.exec("PRAGMA synchronous=OFF"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%64 == 0 {
					if i > 0 {
						if err := c.exec("COMMIT"); err != nil {
							b.Fatal(err)
						}
					}
					if err := c.exec("BEGIN"); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.exec("SAVEPOINT t"); err != nil {
					b.Fatal(err)
				}
				if err := c.update(int64(i%100), int64(i)); err != nil {
					b.Fatal(err)
				}
				if err := c.exec("RELEASE t"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := c.exec("COMMIT"); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkDurableCommit is one one-row UPDATE committed with
// synchronous=FULL: bound by the disk's fsync, so it checks that no binding
// adds syncs of its own.
func BenchmarkDurableCommit(b *testing.B) {
	for _, bd := range bindings {
		b.Run(bd.name, func(b *testing.B) {
			c, _ := seeded(b, bd, 100)
			defer c.close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.update(int64(i%100), int64(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMemoryPerConnection opens 200 databases with one binding at a time and
// reports the growth of the process's resident set and Go heap per open
// connection. It only reports; run with -v.
func TestMemoryPerConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const n = 200
	for _, bd := range bindings {
		dir := t.TempDir()
		runtime.GC()
		rss0, heap0 := rss(t), heapInuse()
		conns := make([]conn, 0, n)
		for i := 0; i < n; i++ {
			c, err := bd.open(filepath.Join(dir, strconv.Itoa(i)+".sqlite"))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.exec("INSERT OR REPLACE INTO kv VALUES (1, 1)"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.pointRead(1); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		runtime.GC()
		rss1, heap1 := rss(t), heapInuse()
		t.Logf("%-10s RSS %6.1f KiB/conn, Go heap %6.1f KiB/conn", bd.name,
			float64(rss1-rss0)/n/1024, float64(int64(heap1)-int64(heap0))/n/1024)
		for _, c := range conns {
			c.close()
		}
	}
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
