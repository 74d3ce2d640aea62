package store

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/store/faultfs"
)

// Power-loss tests: producers run turns on objects of a store whose files
// live in faultfs; at a random moment the power is cut (unsynced writes are
// dropped, reordered or torn per 512-byte sector), a new store is opened on
// the surviving images, and every acknowledged turn must still be there.
//
// Long run: go test -race -run PowerLoss ./internal/store -powerloss.cycles=100
var (
	powerLossCycles = flag.Int("powerloss.cycles", 0, "power cuts per power-loss test (0: the CI default, fewer with -short)")
	powerLossSeed   = flag.Uint64("powerloss.seed", 0, "seed of the power-loss tests (0: a random one, which is logged)")
)

var _ Syncer = (*faultfs.Syncer)(nil)

// Liveness deadlines: generous, they only turn a hang into a failure.
const (
	plDeadline    = 60 * time.Second
	plCheckpoint  = 20 // CheckpointPages: checkpoints and WAL restarts every few commits
	plFailPercent = 5  // turns that write -1, then fail and must be rolled back
)

// powerLoss is one power-loss workload.
type powerLoss struct {
	objects, producers int
	thresholds         []int           // SyncfsThreshold of each cycle, in rotation
	delays             []time.Duration // sync delay of each cycle, in rotation (faultfs.SetSyncDelay)
	lying              bool            // negative control: the syncer acknowledges without syncing
	maxOpen            int             // Config.MaxOpenDatabases (0: the default)
	eager              bool            // owners commit as soon as their queue is empty, ignoring CommitWait
	cycles, short      int             // cycles by default and with -short
}

// plProducer is one producer's history across cycles. It sends each value
// at most once and values only grow, so one comparison per producer covers
// every turn it had acknowledged.
type plProducer struct {
	obj, id int
	key     string
	sent    int64 // highest value sent in a turn
	acked   int64 // highest value whose turn was acknowledged (its promise resolved with nil)
	acks    int64 // turns acknowledged in this cycle

	// How the producer stopped in this cycle.
	err       error
	errBefore bool // the error came before the cut started
}

// plTotals are a run's figures.
type plTotals struct {
	cycles      int
	acks        int64 // acknowledged turns checked
	cut         faultfs.CutStats
	lossCycles  int // cycles after which an acknowledged write was missing
	lost        int // producers that lost acknowledged writes, over all cycles
	closeErrors int // Store.Close errors after cuts
	st          Stats
}

var errDeliberate = errors.New("deliberate turn failure")

func TestStore_PowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   powerLoss
	}{
		// One hot object: every round is one SyncFile of its WAL. Without
		// a delay the sync follows the commit at once, so a cut rarely
		// finds unsynced frames; with slow syncs it is aimed at them.
		{name: "1x8", pl: powerLoss{objects: 1, producers: 8, thresholds: []int{DefaultSyncfsThreshold},
			delays: []time.Duration{0, 2 * time.Millisecond}, cycles: 30, short: 4}},
		// Commits as soon as the queue is empty, so several commits wait
		// for each (slow) sync: more unsynced frames at each cut.
		{name: "1x8-eager", pl: powerLoss{objects: 1, producers: 8, thresholds: []int{DefaultSyncfsThreshold},
			delays: []time.Duration{time.Millisecond}, eager: true, cycles: 20, short: 3}},
		// Several objects: SyncfsThreshold 3 mixes SyncVolume and SyncFile
		// rounds, 1 makes every round a SyncVolume, -1 none.
		{name: "8x4", pl: powerLoss{objects: 8, producers: 4, thresholds: []int{3, 1, -1},
			delays: []time.Duration{0, time.Millisecond}, cycles: 24, short: 6}},
		// Fewer connections than objects: idle objects close (checkpoint,
		// WAL deleted) and reopen with a new WAL, mid-cycle.
		{name: "8x4-lru", pl: powerLoss{objects: 8, producers: 4, thresholds: []int{3, -1}, maxOpen: 3,
			delays: []time.Duration{0, time.Millisecond}, cycles: 10, short: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tot := runPowerLoss(t, tc.pl)
			if tot.lossCycles > 0 {
				t.Errorf("%d of %d cycles lost acknowledged writes", tot.lossCycles, tot.cycles)
			}
		})
	}
}

// TestStore_PowerLossNegativeControl runs the workloads with a syncer that
// acknowledges without syncing (SyncFile on one object; SyncVolume in every
// round on several): the simulation must catch it losing acknowledged
// writes, or it is blind to what it is looking for.
func TestStore_PowerLossNegativeControl(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   powerLoss
	}{
		{"1x8", powerLoss{objects: 1, producers: 8, thresholds: []int{DefaultSyncfsThreshold},
			delays: []time.Duration{0}, lying: true, cycles: 10, short: 5}},
		{"8x4", powerLoss{objects: 8, producers: 4, thresholds: []int{1},
			delays: []time.Duration{0}, lying: true, cycles: 6, short: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tot := runPowerLoss(t, tc.pl)
			if tot.lossCycles == 0 {
				t.Fatalf("acknowledging without a sync lost no acknowledged write in %d cycles: the simulation is blind", tot.cycles)
			}
		})
	}
}

func runPowerLoss(t *testing.T, pl powerLoss) plTotals {
	cycles := pl.cycles
	if testing.Short() {
		cycles = pl.short
	}
	if *powerLossCycles > 0 {
		cycles = *powerLossCycles
	}
	seed := *powerLossSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (reproduce the cuts' choices with -powerloss.seed=%d; the cut moments depend on timing)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	fs := faultfs.New()
	dir := t.TempDir()
	var prods []*plProducer
	for obj := range pl.objects {
		for id := range pl.producers {
			prods = append(prods, &plProducer{obj: obj, id: id, key: fmt.Sprintf("p%d", id)})
		}
	}
	tableAcked := make([]bool, pl.objects) // the table's creation was acknowledged
	var tot plTotals
	start := time.Now()
	for c := 0; ; c++ {
		var syncer Syncer = fs.Syncer()
		if pl.lying {
			syncer = fs.LyingSyncer()
		}
		delay := pl.delays[c%len(pl.delays)]
		fs.SetSyncDelay(delay)
		st, err := Open(Config{
			Dir:              dir,
			VFS:              fs,
			Syncer:           syncer,
			CheckpointPages:  plCheckpoint,
			MaxOpenDatabases: pl.maxOpen,
			SyncfsThreshold:  pl.thresholds[c%len(pl.thresholds)],
			Logger:           slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		owners := make([]*owner, pl.objects)
		for i := range owners {
			o, err := st.Acquire("PL", fmt.Sprintf("obj%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			owners[i] = startOwnerWith(o, pl.producers+1, pl.eager)
		}
		if c > 0 {
			lost := plVerify(t, c, owners, prods, tableAcked, pl.lying)
			if lost > 0 {
				tot.lossCycles++
				tot.lost += lost
			}
			for _, p := range prods {
				tot.acks += p.acks
				p.acks = 0
			}
		}
		if c == cycles {
			// After the last cut: a clean close must succeed.
			plPanics(t, c, plStopOwners(t, owners), &tot)
			tot.st = addStats(tot.st, st.Stats())
			if err := plClose(t, st); err != nil {
				t.Errorf("close after recovery: %v", err)
			}
			break
		}

		for i, w := range owners {
			if err := w.do(func(o *Object) error { return plSetup(o, pl.producers) }); err != nil {
				t.Fatalf("cycle %d: set up object %d: %v", c, i, err)
			}
			tableAcked[i] = true
		}

		var stop, cutting atomic.Bool
		var acks atomic.Int64
		var wg sync.WaitGroup
		for i, p := range prods {
			prng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
			w := owners[p.obj]
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.err = plProduce(w, p, prng, &stop, &acks)
				p.errBefore = p.err != nil && !cutting.Load()
			}()
		}

		// Cut at a random moment, once at least one turn was acknowledged.
		// With slow syncs, the cut waits (briefly) for a moment when some
		// write is unsynced, so that most cuts have something to tear:
		// commits waiting for the coordinator, or a checkpoint between
		// copying pages and syncing the database file.
		time.Sleep(5*time.Millisecond + time.Duration(rng.IntN(146))*time.Millisecond)
		for deadline := time.Now().Add(plDeadline); acks.Load() == 0; {
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: no turn acknowledged within %v", c, plDeadline)
			}
			time.Sleep(time.Millisecond)
		}
		if delay > 0 {
			for deadline := time.Now().Add(time.Second); fs.Unsynced() == 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Microsecond)
			}
		}
		cutting.Store(true)
		cs := fs.Cut(rand.New(rand.NewPCG(rng.Uint64(), uint64(c))))
		if testing.Verbose() {
			t.Logf("cycle %d: cut after %d acknowledged turns: %+v", c, acks.Load(), cs)
		}
		tot.cut.Files += cs.Files
		tot.cut.UnsyncedSectors += cs.UnsyncedSectors
		tot.cut.DroppedSectors += cs.DroppedSectors
		tot.cut.UnsyncedTruncates += cs.UnsyncedTruncates
		tot.cut.DroppedTruncates += cs.DroppedTruncates
		stop.Store(true)

		// Everything of the dead store must still finish: producers get
		// errors, owners stop, Close returns.
		plWait(t, fmt.Sprintf("cycle %d: producers after the cut", c), func() { wg.Wait() })
		for _, p := range prods {
			if p.errBefore {
				t.Errorf("cycle %d: object %d producer %d failed before the cut: %v", c, p.obj, p.id, p.err)
			}
		}
		plPanics(t, c, plStopOwners(t, owners), &tot)
		tot.st = addStats(tot.st, st.Stats())
		if err := plClose(t, st); err != nil {
			tot.closeErrors++
		}
		fs.Restart()
		tot.cycles++
		if t.Failed() {
			t.Fatalf("cycle %d failed (seed %d)", c, seed)
		}
	}
	fst := fs.Stats()
	t.Logf("%d cycles in %v: %d acknowledged turns checked; cuts dropped %d of %d unsynced sector pieces and %d of %d unsynced truncates; %d cycles lost acknowledged writes (%d producers); %d closes after a cut failed",
		tot.cycles, time.Since(start).Round(time.Millisecond), tot.acks,
		tot.cut.DroppedSectors, tot.cut.UnsyncedSectors, tot.cut.DroppedTruncates, tot.cut.UnsyncedTruncates,
		tot.lossCycles, tot.lost, tot.closeErrors)
	t.Logf("store: %d commits, %d turns, %d rounds, %d file syncs, %d volume syncs, %d sync errors; faultfs: %d opens, %d file syncs",
		tot.st.Commits, tot.st.Turns, tot.st.Rounds, tot.st.FileSyncs, tot.st.VolumeSyncs, tot.st.SyncErrors, fst.Opens, fst.Syncs)
	return tot
}

// plSetup creates the counters (SQL row and KV key per producer) if they
// are missing. It is idempotent: it runs at every cycle.
func plSetup(o *Object, producers int) error {
	if err := o.Exec("CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)").Err(); err != nil {
		return err
	}
	for id := range producers {
		if err := o.Exec("INSERT OR IGNORE INTO counters (id, v) VALUES (?, 0)", id).Err(); err != nil {
			return err
		}
		var v int64
		ok, err := o.Get(fmt.Sprintf("p%d", id), &v)
		if err != nil {
			return err
		}
		if !ok {
			if err := o.Put(fmt.Sprintf("p%d", id), int64(0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// plProduce sends turns until stop is set or a turn fails. Each turn writes
// the next value to the producer's SQL row and KV key (one turn, two
// tables: a partial turn would show as a mismatch); some turns write -1
// and then fail, so their writes must be rolled back.
func plProduce(w *owner, p *plProducer, rng *rand.Rand, stop *atomic.Bool, acks *atomic.Int64) error {
	for !stop.Load() {
		if rng.IntN(100) < plFailPercent {
			err := w.do(func(o *Object) error {
				if err := plWrite(o, p, -1); err != nil {
					return err
				}
				return errDeliberate
			})
			if !errors.Is(err, errDeliberate) {
				return fmt.Errorf("failing turn: %w", err)
			}
			continue
		}
		v := p.sent + 1
		p.sent = v
		if err := w.do(func(o *Object) error { return plWrite(o, p, v) }); err != nil {
			return err
		}
		p.acked = v
		p.acks++
		acks.Add(1)
	}
	return nil
}

func plWrite(o *Object, p *plProducer, v int64) error {
	if err := o.Exec("UPDATE counters SET v = ? WHERE id = ?", v, p.id).Err(); err != nil {
		return err
	}
	return o.Put(p.key, v)
}

// plVerify checks the recovered databases against the producers' history
// and returns how many producers lost acknowledged writes. Anything else
// wrong (integrity, a partial or failed turn visible, a value never sent)
// fails the test. Under the negative control a loss is recorded in the
// history (acked drops to what survived) so each cycle is judged alone.
func plVerify(t *testing.T, c int, owners []*owner, prods []*plProducer, tableAcked []bool, lying bool) (lost int) {
	t.Helper()
	type got struct{ sql, kv int64 }
	for i, w := range owners {
		var integrity []any
		var tableFound bool
		vals := map[int]got{}
		err := w.do(func(o *Object) error {
			rows, err := o.Exec("PRAGMA integrity_check").Raw()
			if err != nil {
				return fmt.Errorf("integrity_check: %w", err)
			}
			for _, r := range rows {
				integrity = append(integrity, r...)
			}
			rows, err = o.Exec("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = 'counters'").Raw()
			if err != nil {
				return err
			}
			if tableFound = len(rows) == 1; !tableFound {
				return nil
			}
			rows, err = o.Exec("SELECT id, v FROM counters").Raw()
			if err != nil {
				return err
			}
			for _, r := range rows {
				id := int(r[0].(int64))
				g := vals[id]
				g.sql = r[1].(int64)
				vals[id] = g
			}
			for id := range len(prods) / len(owners) {
				var v int64
				if _, err := o.Get(fmt.Sprintf("p%d", id), &v); err != nil {
					return err
				}
				g := vals[id]
				g.kv = v // a missing row or key reads as 0, its initial value
				vals[id] = g
			}
			return nil
		})
		if err != nil {
			t.Fatalf("cycle %d: object %d: check after recovery: %v", c, i, err)
		}
		if len(integrity) != 1 || integrity[0] != "ok" {
			t.Fatalf("cycle %d: object %d: integrity_check: %v", c, i, integrity)
		}
		if !tableFound && tableAcked[i] {
			if !lying {
				t.Errorf("cycle %d: object %d: the acknowledged table is gone", c, i)
			}
			tableAcked[i] = false
		}
		for _, p := range prods {
			if p.obj != i {
				continue
			}
			g := vals[p.id]
			switch {
			case g.sql != g.kv:
				t.Errorf("cycle %d: object %d producer %d: SQL row %d but KV key %d: a partial turn survived", c, i, p.id, g.sql, g.kv)
			case g.sql < 0:
				t.Errorf("cycle %d: object %d producer %d: value %d: a failed turn's write survived", c, i, p.id, g.sql)
			case g.sql > p.sent:
				t.Errorf("cycle %d: object %d producer %d: value %d was never sent (highest sent %d)", c, i, p.id, g.sql, p.sent)
			case g.sql < p.acked:
				lost++
				if !lying {
					t.Errorf("cycle %d: object %d producer %d: value %d, but %d was acknowledged (highest sent %d)", c, i, p.id, g.sql, p.acked, p.sent)
				}
				p.acked = g.sql
			}
		}
	}
	return lost
}

// plStopOwners stops the owners, waits for them and releases the objects.
// It returns the stacks of the panics their turns had.
func plStopOwners(t *testing.T, owners []*owner) (panics []string) {
	t.Helper()
	for _, w := range owners {
		close(w.ch)
	}
	for i, w := range owners {
		plWait(t, fmt.Sprintf("owner of object %d", i), func() { <-w.stopped })
		w.o.Release()
		panics = append(panics, w.panics...)
	}
	return panics
}

// plPanics fails the test for each panic in a turn: a storage failure must
// fail the turn, never panic.
func plPanics(t *testing.T, c int, panics []string, tot *plTotals) {
	t.Helper()
	for _, stack := range panics {
		t.Errorf("cycle %d: a turn panicked: %s", c, stack)
	}
}

// plClose closes the store, failing the test if Close does not return.
func plClose(t *testing.T, st *Store) error {
	t.Helper()
	var err error
	plWait(t, "Store.Close", func() { err = st.Close() })
	return err
}

// plWait runs fn and fails the test with every goroutine's stack if it
// does not return within the liveness deadline.
func plWait(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(plDeadline):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within %v: a hang\n%s", what, plDeadline, buf)
	}
}

func addStats(a, b Stats) Stats {
	a.Commits += b.Commits
	a.Turns += b.Turns
	a.Rounds += b.Rounds
	a.FileSyncs += b.FileSyncs
	a.VolumeSyncs += b.VolumeSyncs
	a.DirSyncs += b.DirSyncs
	a.SyncErrors += b.SyncErrors
	return a
}

// TestStore_PowerLossIOErrorInWrite: a write statement whose step fails
// with an I/O error (here a read of a page the fresh connection has not
// cached yet, after the power cut) must fail its turn and reset the
// object, without touching the connection that the reset closed.
func TestStore_PowerLossIOErrorInWrite(t *testing.T) {
	fs := faultfs.New()
	cfg := Config{Dir: t.TempDir(), VFS: fs, Syncer: fs.Syncer(), Logger: slog.New(slog.DiscardHandler)}
	st := mustStore(t, cfg)
	o := mustObject(t, st, "NS", "obj")
	mustTurn(t, o, func() error {
		if err := o.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)").Err(); err != nil {
			return err
		}
		if err := o.Exec("INSERT INTO t VALUES (1, 1)").Err(); err != nil {
			return err
		}
		return o.Put("k", 1)
	})
	o.Release()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.Syncer = fs.Syncer()
	st = mustStore(t, cfg) // a new connection: a cold page cache
	o = mustObject(t, st, "NS", "obj")
	if err := o.Begin(); err != nil {
		t.Fatal(err)
	}
	var stepErr error
	func() {
		defer func() {
			if r := recover(); r != nil {
				buf := make([]byte, 64<<10)
				t.Errorf("panic in a write statement after an I/O error: %v\n%s", r, buf[:runtime.Stack(buf, false)])
			}
		}()
		if err := o.Put("x", 1); err != nil { // opens and write-locks the database; t's pages stay uncached
			t.Fatal(err)
		}
		fs.Cut(rand.New(rand.NewPCG(1, 1)))
		stepErr = o.Exec("UPDATE t SET v = 2 WHERE id = 1").Err()
	}()
	p, err := o.End(stepErr)
	if stepErr == nil || err == nil {
		t.Errorf("UPDATE after the cut: %v, turn: %v; want both to fail", stepErr, err)
	}
	if werr := p.Wait(context.Background()); !errors.Is(werr, errs.ErrObjectReset) {
		t.Errorf("batch promise: %v, want ErrObjectReset", werr)
	}
	fs.Restart()
}
