package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/ncruces/go-sqlite3/vfs"
)

func count(t *testing.T, o *Object, q string) int {
	t.Helper()
	var n int
	if err := o.Exec(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestTurn_RollbackOnErrorAndPanic(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error { return o.Exec("CREATE TABLE t (x)").Err() })
	boom := errors.New("boom")
	if _, err := turn(t, o, func() error {
		mustExec(t, o, "INSERT INTO t VALUES (1)")
		o.Put("k", 1)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("turn error = %v, want boom unchanged", err)
	}
	if _, err := turn(t, o, func() error {
		mustExec(t, o, "INSERT INTO t VALUES (2)")
		panic("kaboom")
	}); err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Fatalf("panicking turn error = %v", err)
	}
	mustTurn(t, o, func() error {
		if n := count(t, o, "SELECT count(*) FROM t"); n != 0 {
			t.Errorf("rows after failed turns = %d, want 0", n)
		}
		if ok, _ := o.Get("k", new(int)); ok {
			t.Error("KV write of a failed turn survived")
		}
		return nil
	})
}

func TestTransaction_Nesting(t *testing.T) {
	inTurn(t, func(o *Object) {
		mustExec(t, o, "CREATE TABLE t (x)")
		inner := errors.New("inner failure")
		err := o.Transaction(func() error {
			mustExec(t, o, "INSERT INTO t VALUES (1)")
			err := o.Transaction(func() error {
				mustExec(t, o, "INSERT INTO t VALUES (2)")
				o.Put("inner", true)
				return inner
			})
			if err != inner {
				t.Errorf("inner Transaction returned %v, want its fn's error unchanged", err)
			}
			return o.Transaction(func() error {
				mustExec(t, o, "INSERT INTO t VALUES (3)")
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := o.Exec("SELECT x FROM t ORDER BY x").Raw()
		if fmt.Sprint(rows) != "[[1] [3]]" {
			t.Errorf("rows = %v, want [[1] [3]]", rows)
		}
		if ok, _ := o.Get("inner", new(bool)); ok {
			t.Error("KV write of a rolled-back Transaction survived")
		}
		// A panic inside Transaction rolls it back and goes on unwinding.
		func() {
			defer func() {
				if r := recover(); r != "tx panic" {
					t.Errorf("recovered %v", r)
				}
			}()
			o.Transaction(func() error {
				mustExec(t, o, "INSERT INTO t VALUES (4)")
				panic("tx panic")
			})
		}()
		if n := count(t, o, "SELECT count(*) FROM t WHERE x = 4"); n != 0 {
			t.Error("write of a panicking Transaction survived")
		}
		// After all that the turn's savepoint is intact.
		mustExec(t, o, "INSERT INTO t VALUES (5)")
	})
}

// TestTurn_BatchedTurnsAreIndependent runs several turns in one batch; the
// failed one rolls back alone and all share the batch's promise.
func TestTurn_BatchedTurnsAreIndependent(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error { return o.Exec("CREATE TABLE t (x)").Err() })
	var ps []*gate.Promise
	for i := 1; i <= 5; i++ {
		if err := o.Begin(); err != nil {
			t.Fatal(err)
		}
		mustExec(t, o, "INSERT INTO t VALUES (?)", i)
		var terr error
		if i == 3 {
			terr = errors.New("third fails")
		}
		p, err := o.End(terr)
		if (err != nil) != (i == 3) {
			t.Fatalf("turn %d: %v", i, err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps[1:] {
		if p != ps[0] {
			t.Fatal("turns of one batch got different promises")
		}
	}
	if done, _ := ps[0].Ready(); done {
		t.Fatal("batch promise ready before Commit")
	}
	o.Commit()
	waitDurable(t, ps[0])
	mustTurn(t, o, func() error {
		rows, _ := o.Exec("SELECT x FROM t ORDER BY x").Raw()
		if fmt.Sprint(rows) != "[[1] [2] [4] [5]]" {
			t.Errorf("rows = %v", rows)
		}
		return nil
	})
	if s := st.Stats(); s.Turns < 6 || s.Commits < 2 {
		t.Errorf("stats = %+v", s)
	}
}

// blockingSyncer holds every file sync until released, so tests can see
// what waits for durability.
type blockingSyncer struct {
	Syncer
	release chan struct{}
	fail    atomic.Pointer[error]
	syncs   atomic.Int64
}

func newBlockingSyncer(t *testing.T) *blockingSyncer {
	s, err := newOSSyncer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &blockingSyncer{Syncer: s, release: make(chan struct{})}
}

func (b *blockingSyncer) SyncFile(f vfs.File) error {
	<-b.release
	b.syncs.Add(1)
	if err := b.fail.Load(); err != nil {
		return *err
	}
	return b.Syncer.SyncFile(f)
}

func (b *blockingSyncer) open() { close(b.release) }

// TestTurn_ReadOnlyAndFailedTurnsWaitForEarlierWrites: a turn that wrote
// nothing may have read writes that are not durable yet; its promise must
// wait for them.
func TestTurn_ReadOnlyAndFailedTurnsWaitForEarlierWrites(t *testing.T) {
	bs := newBlockingSyncer(t)
	st := mustStore(t, Config{Syncer: bs})
	o := mustObject(t, st, "NS", "obj")
	pw, err := turn(t, o, func() error { return o.Put("k", 1) })
	if err != nil {
		t.Fatal(err)
	}
	pr, err := turn(t, o, func() error {
		_, err := o.Get("k", new(int))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pf, _ := turn(t, o, func() error { return errors.New("failed turn") })
	pn, _ := turn(t, o, func() error { return nil }) // touched no storage at all
	time.Sleep(20 * time.Millisecond)
	for name, p := range map[string]*gate.Promise{"write": pw, "read-only": pr, "failed": pf, "no storage": pn} {
		if done, _ := p.Ready(); done {
			t.Errorf("%s turn's promise is ready before the write is durable", name)
		}
	}
	bs.open()
	for _, p := range []*gate.Promise{pw, pr, pf, pn} {
		waitDurable(t, p)
	}
}

func TestTurn_PromisesResolveInOrder(t *testing.T) {
	st := mustStore(t)
	o := mustObject(t, st, "NS", "obj")
	var g gate.Gate
	var mu sync.Mutex
	var order []int
	for i := 0; i < 50; i++ {
		p, err := turn(t, o, func() error { return o.Put("k", i) })
		if err != nil {
			t.Fatal(err)
		}
		g.Hold(p, func(err error) {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range order {
		if v != i {
			t.Fatalf("outputs released out of order: %v", order)
		}
	}
	if len(order) != 50 {
		t.Fatalf("released %d of 50", len(order))
	}
}

// TestSync_FailureResetsObject: a failed sync fails the batch's outputs
// with ErrObjectReset; the next Begin reports the reset once and the
// object reopens from disk.
func TestSync_FailureResetsObject(t *testing.T) {
	bs := newBlockingSyncer(t)
	bs.open()
	st := mustStore(t, Config{Syncer: bs})
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error { return o.Put("before", 1) })
	eio := errors.New("injected EIO")
	bs.fail.Store(&eio)
	p, err := turn(t, o, func() error { return o.Put("lost?", 2) })
	if err != nil {
		t.Fatal(err)
	}
	werr := p.Wait(t.Context())
	if !errors.Is(werr, errs.ErrObjectReset) || !strings.Contains(werr.Error(), "injected EIO") {
		t.Fatalf("promise after a failed sync: %v", werr)
	}
	// Later batches of the failed object fail too until the owner resets.
	bs.fail.Store(nil)
	if err := o.Begin(); !errors.Is(err, errs.ErrObjectReset) {
		t.Fatalf("Begin after a failed sync = %v, want ErrObjectReset", err)
	}
	mustTurn(t, o, func() error {
		var v int
		if ok, err := o.Get("before", &v); !ok || err != nil || v != 1 {
			t.Errorf("durable write lost after reset: %v %v %v", v, ok, err)
		}
		return o.Put("after", 3)
	})
	if s := st.Stats(); s.SyncErrors == 0 {
		t.Errorf("SyncErrors = 0 after a failed sync")
	}
}

func TestDurabilityPoint(t *testing.T) {
	bs := newBlockingSyncer(t)
	st := mustStore(t, Config{Syncer: bs})
	o := mustObject(t, st, "NS", "obj")
	if err := o.Begin(); err != nil {
		t.Fatal(err)
	}
	o.Put("a", 1)
	p1, err := o.DurabilityPoint()
	if err != nil {
		t.Fatal(err)
	}
	if done, _ := p1.Ready(); done {
		t.Fatal("durability point ready before its sync")
	}
	o.Put("b", 2)
	if err := o.Transaction(func() error {
		_, err := o.DurabilityPoint()
		if err == nil {
			t.Error("durability point inside Transaction: no error")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p2, err := o.End(errors.New("fails after the point"))
	if err == nil || p2 == p1 {
		t.Fatalf("End = %v (same promise: %v)", err, p2 == p1)
	}
	o.Commit()
	bs.open()
	waitDurable(t, p1)
	waitDurable(t, p2)
	mustTurn(t, o, func() error {
		if ok, _ := o.Get("a", new(int)); !ok {
			t.Error("write before the durability point was rolled back")
		}
		if ok, _ := o.Get("b", new(int)); ok {
			t.Error("write after the durability point survived the turn's failure")
		}
		return nil
	})
}

// TestTurn_BatchLostToFullDatabase: SQLite rolls back the whole batch when
// the database is full; the batch's earlier turns must not be acknowledged.
func TestTurn_BatchLostToFullDatabase(t *testing.T) {
	st := mustStore(t, Config{MaxDatabaseSize: 200 << 10})
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error { return o.Exec("CREATE TABLE t (b)").Err() })
	if err := o.Begin(); err != nil {
		t.Fatal(err)
	}
	o.Put("earlier", 1)
	p1, err := o.End(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Begin(); err != nil {
		t.Fatal(err)
	}
	var ferr error
	for i := 0; i < 100 && ferr == nil; i++ {
		ferr = o.Exec("INSERT INTO t VALUES (?)", make([]byte, 16<<10)).Err()
	}
	if !errors.Is(ferr, errs.ErrLimit) {
		t.Fatalf("filling the database: %v", ferr)
	}
	// Writes after the loss must not commit on their own.
	if err := o.Put("after", 1); err == nil {
		t.Error("write after the batch was lost: no error")
	}
	_, err = o.End(nil)
	if !errors.Is(err, errs.ErrLimit) {
		t.Errorf("End = %v, want the limit error", err)
	}
	o.Commit()
	if err := p1.Wait(t.Context()); !errors.Is(err, errs.ErrObjectReset) {
		t.Errorf("earlier turn of the lost batch: %v, want ErrObjectReset", err)
	}
	mustTurn(t, o, func() error {
		for _, k := range []string{"earlier", "after"} {
			if ok, _ := o.Get(k, new(int)); ok {
				t.Errorf("%q survived the lost batch", k)
			}
		}
		return nil
	})
}

func TestStore_LeastRecentlyUsedClosing(t *testing.T) {
	st := mustStore(t, Config{MaxOpenDatabases: 3})
	const n = 10
	objs := make([]*Object, n)
	for i := range objs {
		objs[i] = mustObject(t, st, "NS", fmt.Sprintf("o%d", i))
		mustTurn(t, objs[i], func() error { return objs[i].Put("i", i) })
	}
	waitOpen := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for st.Stats().OpenDatabases > 3 {
			if time.Now().After(deadline) {
				t.Fatalf("open databases = %d, want <= 3", st.Stats().OpenDatabases)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitOpen()
	for i, o := range objs {
		mustTurn(t, o, func() error {
			var v int
			if ok, err := o.Get("i", &v); !ok || err != nil || v != i {
				t.Errorf("object %d after reopen: %v %v %v", i, v, ok, err)
			}
			return nil
		})
	}
	waitOpen()
}

func TestStore_AcquireSharesHandle(t *testing.T) {
	st := mustStore(t)
	a := mustObject(t, st, "NS", "x")
	b := mustObject(t, st, "NS", "x")
	if a != b {
		t.Error("two handles for one object")
	}
	if _, err := st.Acquire("NS", "../etc"); err == nil {
		t.Error("Acquire with a path in the ID: no error")
	}
	if _, err := st.Acquire("", "x"); err == nil {
		t.Error("Acquire with an empty namespace: no error")
	}
}

func TestStore_CloseFailsOpenBatch(t *testing.T) {
	st, err := Open(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := st.Acquire("NS", "x")
	mustTurn(t, o, func() error { return o.Put("durable", 1) })
	o.Begin()
	o.Put("open", 1)
	p, _ := o.End(nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(t.Context()); !errors.Is(err, errs.ErrClosed) {
		t.Errorf("batch open at Close: %v, want ErrClosed", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := st.Acquire("NS", "y"); !errors.Is(err, errs.ErrClosed) {
		t.Errorf("Acquire after Close: %v", err)
	}
}

// TestSync_VolumePath: with many dirty objects the coordinator uses one
// syncfs; the promises resolve all the same.
func TestSync_VolumePath(t *testing.T) {
	st := mustStore(t, Config{SyncfsThreshold: 2})
	var owners []*owner
	for i := 0; i < 8; i++ {
		o := mustObject(t, st, "NS", fmt.Sprintf("o%d", i))
		owners = append(owners, startOwner(o, 4))
	}
	var wg sync.WaitGroup
	for _, w := range owners {
		for p := 0; p < 3; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if err := w.do(func(o *Object) error { return o.Put(fmt.Sprint(p), i) }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, w := range owners {
		w.stop()
	}
	if s := st.Stats(); s.VolumeSyncs == 0 {
		t.Errorf("no syncfs with 8 busy objects and a threshold of 2: %+v", s)
	}
}

// A burst of new objects opening faster than the closer closes never
// takes the open databases far past the cap: openers close some
// themselves past the hard limit.
func TestStore_OpenDatabasesBoundedUnderBurst(t *testing.T) {
	const maxOpen, workers, perWorker = 8, 8, 40
	st := mustStore(t, Config{MaxOpenDatabases: maxOpen})
	var peak atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				o, err := st.Acquire("NS", fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				p, err := turn(t, o, func() error { return o.Put("k", i) })
				if err != nil {
					t.Error(err)
				} else {
					waitDurable(t, p) // as the runtime's reply waits
				}
				for {
					n, p := st.Stats().OpenDatabases, peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				o.Release()
			}
		}()
	}
	wg.Wait()
	// Each worker may hold one database open past the hard limit (its own,
	// busy in its turn) and one the closer has not reached yet.
	if limit := st.hardLimit() + 2*workers; peak.Load() > limit {
		t.Errorf("open databases peaked at %d with MaxOpenDatabases %d (bound %d)", peak.Load(), maxOpen, limit)
	}
	t.Logf("peak open databases %d (MaxOpenDatabases %d, hard limit %d)", peak.Load(), maxOpen, st.hardLimit())
}
