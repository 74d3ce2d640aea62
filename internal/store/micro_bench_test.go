package store

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// benchObject returns an object inside an open turn with table kv(k, v)
// holding 1,000 rows and 1,000 KV keys.
func benchObject(b *testing.B) *Object {
	st := mustStore(b)
	o := mustObject(b, st, "BENCH", "obj")
	mustTurn(b, o, func() error {
		if err := o.Exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)").Err(); err != nil {
			return err
		}
		for i := 0; i < 1000; i++ {
			if err := o.Exec("INSERT INTO kv VALUES (?, ?)", i, i).Err(); err != nil {
				return err
			}
			if err := o.Put("key"+strconv.Itoa(i), int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err := o.Begin(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.End(nil); o.Commit() })
	return o
}

// BenchmarkPointRead is one SQL point read through the cursor API inside a
// turn: Exec with a bound key, Scan of one column.
func BenchmarkPointRead(b *testing.B) {
	o := benchObject(b)
	keys := make([]int64, 1000)
	for i := range keys {
		keys[i] = int64(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var v int64
	for i := 0; i < b.N; i++ {
		if err := o.Exec("SELECT v FROM kv WHERE k = ?", keys[i%1000]).Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKVGet(b *testing.B) {
	o := benchObject(b)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var v int64
	for i := 0; i < b.N; i++ {
		if ok, err := o.Get(keys[i%1000], &v); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkKVPut is one Put inside an open turn (the commit is measured by
// the hot-object benchmarks).
func BenchmarkKVPut(b *testing.B) {
	o := benchObject(b)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = "key" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.Put(keys[i%1000], int64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTurn is a whole one-row write turn without the sync: Begin,
// UPDATE, End, and a Commit every 32 turns.
func BenchmarkTurn(b *testing.B) {
	o := benchObject(b)
	o.End(nil)
	o.Commit()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.Begin(); err != nil {
			b.Fatal(err)
		}
		if err := o.Exec("UPDATE kv SET v = ? WHERE k = ?", i, i%1000).Err(); err != nil {
			b.Fatal(err)
		}
		if _, err := o.End(nil); err != nil {
			b.Fatal(err)
		}
		if i%32 == 31 {
			o.Commit()
		}
	}
	b.StopTimer()
	o.Commit()
	o.Begin()
}

// BenchmarkOpenExisting opens an existing object's database and reads one
// key (the first turn after the LRU closed it), then closes it.
func BenchmarkOpenExisting(b *testing.B) {
	st := mustStore(b, Config{MaxOpenDatabases: 1})
	objs := make([]*Object, 2)
	for i := range objs {
		objs[i] = mustObject(b, st, "BENCH", fmt.Sprintf("obj%d", i))
		mustTurn(b, objs[i], func() error { return objs[i].Put("k", i) })
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := objs[i%2] // each open closes the other (MaxOpenDatabases 1)
		o.Begin()
		if ok, err := o.Get("k", new(int)); !ok || err != nil {
			b.Fatal(ok, err)
		}
		o.End(nil)
		o.Commit()
	}
}

// TestMemoryPerOpenDatabase reports the resident memory and Go heap one
// open object database costs (run with -v; it only reports).
func TestMemoryPerOpenDatabase(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("measurement")
	}
	const n = 300
	st := mustStore(t)
	objs := make([]*Object, n)
	runtime.GC()
	rss0, heap0 := rssBytes(t), heapBytes()
	for i := range objs {
		objs[i] = mustObject(t, st, "MEM", fmt.Sprintf("obj%04d", i))
		mustTurn(t, objs[i], func() error { return objs[i].Put("k", i) })
	}
	runtime.GC()
	rss1, heap1 := rssBytes(t), heapBytes()
	if got := st.Stats().OpenDatabases; got != n {
		t.Fatalf("open databases = %d, want %d", got, n)
	}
	t.Logf("per open database: RSS %.1f KiB, Go heap %.1f KiB",
		float64(rss1-rss0)/n/1024, float64(int64(heap1)-int64(heap0))/n/1024)
}

func heapBytes() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// BenchmarkCreate creates a new object's database and commits one write in
// it, one object after another, waiting until the write is durable: the
// cost of a cold activation of a new object at the store.
func BenchmarkCreate(b *testing.B) {
	st := mustStore(b, Config{MaxOpenDatabases: 64})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o, err := st.Acquire("BENCH", "new"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		mustTurn(b, o, func() error { return o.Put("k", i) })
		o.Release()
	}
}
