package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/codec"
)

// The SIGKILL crash test (durability-notes, "Crash"). TestCrash re-executes
// the test binary as a child running TestCrashChild: objects × producers
// commit turns under load and the child prints a line for each turn only
// once the turn's promise has resolved with nil. The parent kills the child
// with SIGKILL at a random moment, reopens the store in its own process
// (WAL recovery) and checks that every acknowledged turn is there and that
// no partial, failed or rolled-back turn is. The data directory carries over
// from cycle to cycle.
//
// A process kill leaves every write(2) in the kernel's page cache, so this
// test proves recovery, savepoint rollback and the atomicity of turns under
// a kill at any instant (mid-commit, mid-checkpoint, mid-WAL restart, mid
// reopen); it cannot tell a synced turn from an unsynced one.
//
// Run it longer with -crash.cycles=200 or DURABLE_CRASH_CYCLES=200.

var crashCyclesFlag = flag.Int("crash.cycles", 0, "TestCrash: kill cycles (0: $"+crashCyclesEnv+", else 5, or 2 with -short)")

const (
	crashChildEnv   = "DURABLE_CRASH_CHILD"   // the data directory; set in the child only
	crashVariantEnv = "DURABLE_CRASH_VARIANT" // the cycle number, which picks the child's Config
	crashCyclesEnv  = "DURABLE_CRASH_CYCLES"

	crashObjects   = 4
	crashProducers = 4
	crashNS        = "CRASH"

	// Liveness only: a child that acks nothing for this long is stuck.
	crashLiveness = 20 * time.Second
	// The child gives up (and exits, failing the cycle) if nobody kills it.
	crashChildMaxLife = 2 * time.Minute
)

var errCrashIntentional = errors.New("crash test: this turn fails on purpose")

func crashObjectID(i int) string { return fmt.Sprintf("obj%d", i) }
func crashKey(p int) string      { return fmt.Sprintf("p%d", p) }

// crashVariant is the set-up of one cycle. Cycles rotate through the
// coordinator's two sync paths and a churn set-up: one open connection
// allowed for four busy objects, producers that pause between turns and a
// visitor that keeps opening other objects, so idle connections close and
// reopen under load (each close checkpoints and deletes the WAL, each
// reopen creates a new one: durability-notes failure mode 3).
type crashVariant struct {
	cfg   Config
	name  string
	churn bool
}

func crashVariantOf(dir string, cycle int) crashVariant {
	cfg := Config{Dir: dir, CheckpointPages: 20, SyncfsThreshold: -1}
	switch cycle % 3 {
	case 0:
		return crashVariant{cfg, "fdatasync per WAL", false}
	case 1:
		cfg.SyncfsThreshold = 1
		return crashVariant{cfg, "syncfs per round", false}
	default:
		cfg.MaxOpenDatabases = 1
		return crashVariant{cfg, "fdatasync per WAL, connection churn", true}
	}
}

// crashOut writes the child's protocol lines to stdout, one write per line.
type crashOut struct {
	mu     sync.Mutex
	failed chan struct{} // closed by the first bad line
	once   sync.Once
}

func (c *crashOut) line(format string, args ...any) {
	b := fmt.Appendf(nil, format+"\n", args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	os.Stdout.Write(b)
}

// bad reports a violation seen by the child itself; the parent fails the
// test on it whatever the kill timing.
func (c *crashOut) bad(format string, args ...any) {
	c.line("bad "+format, args...)
	c.once.Do(func() { close(c.failed) })
}

// crashState is one producer's data as a turn sees it.
type crashState struct {
	counter, kv, logMax int64
}

func readCrashState(o *Object, p int) (crashState, error) {
	var s crashState
	if err := o.Exec("SELECT value FROM counters WHERE producer = ?", p).Scan(&s.counter); err != nil {
		return s, fmt.Errorf("read counter: %w", err)
	}
	ok, err := o.Get(crashKey(p), &s.kv)
	if err != nil {
		return s, err
	}
	if !ok {
		return s, fmt.Errorf("KV key %s is missing", crashKey(p))
	}
	if err := o.Exec("SELECT coalesce(max(value), 0) FROM log WHERE producer = ?", p).Scan(&s.logMax); err != nil {
		return s, fmt.Errorf("read log: %w", err)
	}
	if s.counter != s.kv || s.counter != s.logMax {
		return s, fmt.Errorf("producer %d: counter %d, KV %d, max logged %d differ", p, s.counter, s.kv, s.logMax)
	}
	return s, nil
}

// crashSetup creates the tables and the producers' rows and keys; it is
// idempotent, so every child runs it.
func crashSetup(o *Object) error {
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS counters (producer INTEGER PRIMARY KEY, value INTEGER NOT NULL)",
		"CREATE TABLE IF NOT EXISTS log (producer INTEGER NOT NULL, value INTEGER NOT NULL)",
		"CREATE INDEX IF NOT EXISTS log_producer_value ON log (producer, value)",
	} {
		if err := o.Exec(q).Err(); err != nil {
			return err
		}
	}
	for p := 0; p < crashProducers; p++ {
		if err := o.Exec("INSERT OR IGNORE INTO counters VALUES (?, 0)", p).Err(); err != nil {
			return err
		}
		var v int64
		ok, err := o.Get(crashKey(p), &v)
		if err != nil {
			return err
		}
		if !ok {
			if err := o.Put(crashKey(p), int64(0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestCrashChild is the child of TestCrash; it runs until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("the child process of TestCrash")
	}
	cycle, err := strconv.Atoi(os.Getenv(crashVariantEnv))
	if err != nil {
		t.Fatalf("%s: %v", crashVariantEnv, err)
	}
	v := crashVariantOf(dir, cycle)
	st, err := Open(v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The store is never closed: the parent kills this process.
	out := &crashOut{failed: make(chan struct{})}
	owners := make([]*owner, crashObjects)
	for i := range owners {
		o, err := st.Acquire(crashNS, crashObjectID(i))
		if err != nil {
			t.Fatal(err)
		}
		owners[i] = startOwner(o, crashProducers+1)
		if err := owners[i].do(crashSetup); err != nil {
			t.Fatalf("setup %s: %v", crashObjectID(i), err)
		}
	}
	for i, w := range owners {
		for p := 0; p < crashProducers; p++ {
			go crashProduce(w, i, p, v.churn, out)
		}
	}
	if v.churn {
		go crashVisit(t, st, out)
	}
	select {
	case <-out.failed:
		t.Fatal("the child saw a violation (see its bad lines)")
	case <-time.After(crashChildMaxLife):
		t.Fatal("nobody killed the child")
	}
}

// crashProduce runs one producer: one turn at a time, each waited for.
// Turn i fails on purpose when i%7 == 3 (after writing a negative value
// everywhere), is read-only when i%5 == 1, and otherwise increments the
// producer's counter, KV value and log in one turn.
func crashProduce(w *owner, obj, p int, pause bool, out *crashOut) {
	last := int64(-1) // the value of the last acked turn; -1 until known
	for i := 0; ; i++ {
		if pause {
			// Lets the object go idle now and then, so that the
			// visitor's opens close its connection.
			time.Sleep(time.Duration(rand.IntN(8000)) * time.Microsecond)
		}
		switch {
		case i%7 == 3:
			err := w.do(func(o *Object) error {
				s, err := readCrashState(o, p)
				if err != nil {
					return err
				}
				poison := -(s.counter + 1)
				if err := o.Exec("UPDATE counters SET value = ? WHERE producer = ?", poison, p).Err(); err != nil {
					return err
				}
				if err := o.Put(crashKey(p), poison); err != nil {
					return err
				}
				if err := o.Exec("INSERT INTO log VALUES (?, ?)", p, poison).Err(); err != nil {
					return err
				}
				return errCrashIntentional
			})
			if !errors.Is(err, errCrashIntentional) {
				out.bad("%d %d: failing turn: got %v, want the intentional error", obj, p, err)
				return
			}
			out.line("fail %d %d", obj, p)

		case i%5 == 1:
			// Reads every producer of the object, so the printed values
			// include writes of other producers that may not be durable
			// yet when read: the promise must cover them too.
			var vals [crashProducers]int64
			err := w.do(func(o *Object) error {
				for q := range vals {
					s, err := readCrashState(o, q)
					if err != nil {
						return err
					}
					vals[q] = s.counter
				}
				return nil
			})
			if err != nil {
				out.bad("%d %d: read-only turn: %v", obj, p, err)
				return
			}
			if last >= 0 && vals[p] != last {
				out.bad("%d %d: read-only turn saw %d, the last acked value is %d", obj, p, vals[p], last)
				return
			}
			strs := make([]string, len(vals))
			for q, v := range vals {
				strs[q] = strconv.FormatInt(v, 10)
			}
			out.line("read %d %s", obj, strings.Join(strs, " "))

		default:
			var next int64
			err := w.do(func(o *Object) error {
				s, err := readCrashState(o, p)
				if err != nil {
					return err
				}
				if last >= 0 && s.counter != last {
					return fmt.Errorf("counter is %d, the last acked value is %d", s.counter, last)
				}
				next = s.counter + 1
				if err := o.Exec("UPDATE counters SET value = ? WHERE producer = ?", next, p).Err(); err != nil {
					return err
				}
				if err := o.Put(crashKey(p), next); err != nil {
					return err
				}
				return o.Exec("INSERT INTO log VALUES (?, ?)", p, next).Err()
			})
			if err != nil {
				out.bad("%d %d: write turn: %v", obj, p, err)
				return
			}
			last = next
			out.line("ack %d %d %d", obj, p, next)
		}
	}
}

// crashVisitors are the churn cycles' extra objects.
const crashVisitors = 2

func crashVisitorID(v int) string { return fmt.Sprintf("visitor%d", v) }

// crashVisit acquires one visitor object after the other, each time writing
// its turn number k to KV "n" in a turn of its own, and acks "visit v k".
// With MaxOpenDatabases=1 each visitor's open closes every idle connection.
func crashVisit(t *testing.T, st *Store, out *crashOut) {
	for k := int64(1); ; k++ {
		v := int(k % crashVisitors)
		o, err := st.Acquire(crashNS, crashVisitorID(v))
		if err != nil {
			out.bad("visitor: %v", err)
			return
		}
		p, err := turn(t, o, func() error { return o.Put("n", k) })
		if err == nil {
			err = p.Wait(context.Background())
		}
		o.Release()
		if err != nil {
			out.bad("visitor %d: turn %d: %v", v, k, err)
			return
		}
		out.line("visit %d %d", v, k)
		time.Sleep(time.Millisecond)
	}
}

// crashValues holds one value per object and producer.
type crashValues [crashObjects][crashProducers]int64

// crashRun is what the parent saw of one child.
type crashRun struct {
	acks, reads, fails, visits int
	lastAck                    crashValues // the last value acked per producer (before the child: the recovered one)
	seen                       crashValues // the highest value acked or reported by a read-only turn
	visited                    [crashVisitors]int64
	killAfter                  time.Duration
}

func crashCycles(t *testing.T) int {
	n := *crashCyclesFlag
	if n == 0 {
		if s := os.Getenv(crashCyclesEnv); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive number", crashCyclesEnv, s)
			}
		}
	}
	if n == 0 {
		n = 5
		if testing.Short() {
			n = 2
		}
	}
	return n
}

// TestCrash kills a loaded child process with SIGKILL, cycle after cycle,
// and checks after each kill that every acked turn survived whole and
// nothing else did.
func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	cycles := crashCycles(t)
	dir := t.TempDir()
	var recovered crashValues // zero: the database starts empty
	var acks, reads, fails, visits int
	start := time.Now()
	for cycle := 0; cycle < cycles; cycle++ {
		variant := crashVariantOf(dir, cycle).name
		r, ok := runCrashChild(t, dir, cycle, &recovered)
		if !ok {
			return
		}
		acks += r.acks
		reads += r.reads
		fails += r.fails
		visits += r.visits
		next := checkCrashDir(t, dir, cycle, r, &recovered)
		var ahead int64
		for i := range next {
			for p := range next[i] {
				ahead += next[i][p] - r.lastAck[i][p]
			}
		}
		t.Logf("cycle %d (%s): killed %v after the first ack; %d write turns acked, %d read-only, %d failed on purpose, %d visits; %d committed turns past the last acks survived",
			cycle, variant, r.killAfter, r.acks, r.reads, r.fails, r.visits, ahead)
		recovered = next
		if t.Failed() {
			return
		}
	}
	t.Logf("%d cycles in %v: %d acked write turns checked (plus %d read-only, %d failed and %d visitor turns)",
		cycles, time.Since(start).Round(time.Millisecond), acks, reads, fails, visits)
}

// runCrashChild starts a child on dir, reads its lines until it has acked
// something, kills it at a random moment after that, and returns what it
// acked. before holds the values recovered after the previous cycle: each
// producer's acks must continue from there, one by one.
func runCrashChild(t *testing.T, dir string, cycle int, before *crashValues) (crashRun, bool) {
	t.Helper()
	r := crashRun{lastAck: *before}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashVariantEnv+"="+strconv.Itoa(cycle))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout) // keep the child from blocking on a full pipe
	}()

	var other []string // anything that is not a protocol line
	var problems []string
	kill := func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("cycle %d: kill: %v", cycle, err)
		}
	}
	liveness := time.NewTimer(crashLiveness)
	defer liveness.Stop()
	var killAt <-chan time.Time
	killed := false
	for lines != nil {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if err := r.parse(line); err != nil {
				problems = append(problems, err.Error())
				if !killed {
					killAt, killed = nil, true
					kill()
				}
				continue
			}
			if f := strings.Fields(line); len(f) == 0 || !crashProtocol[f[0]] {
				if len(other) < 50 {
					other = append(other, line)
				}
			}
			if r.acks == 1 && killAt == nil && !killed {
				r.killAfter = time.Duration(50+rand.IntN(351)) * time.Millisecond
				killAt = time.After(r.killAfter)
				liveness.Stop()
			}
		case <-killAt:
			killAt = nil
			killed = true
			kill()
		case <-liveness.C:
			problems = append(problems, fmt.Sprintf("the child acked nothing within %v", crashLiveness))
			killed = true
			kill()
		}
	}
	err = cmd.Wait()
	var ws syscall.WaitStatus
	if ee, ok := err.(*exec.ExitError); ok {
		ws, _ = ee.Sys().(syscall.WaitStatus)
	}
	if !killed || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		problems = append(problems, fmt.Sprintf("the child ended by itself (%v), not by our SIGKILL", err))
	}
	if len(problems) > 0 {
		t.Errorf("cycle %d:\n%s\nchild's other output:\n%s\nchild's stderr:\n%s",
			cycle, strings.Join(problems, "\n"), strings.Join(other, "\n"), stderr.String())
		return r, false
	}
	return r, true
}

var crashProtocol = map[string]bool{"ack": true, "read": true, "fail": true, "visit": true}

// parse records one line of the child. Acks of a producer must count up by
// one from the value recovered before this child started.
func (r *crashRun) parse(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	nums := func(want int) ([]int64, error) {
		if len(f) != want+1 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		out := make([]int64, want)
		for i := range out {
			n, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			out[i] = n
		}
		if f[0] == "visit" {
			if out[0] < 0 || out[0] >= crashVisitors {
				return nil, fmt.Errorf("line %q names no visitor of the test", line)
			}
		} else if out[0] < 0 || out[0] >= crashObjects || (f[0] != "read" && (out[1] < 0 || out[1] >= crashProducers)) {
			return nil, fmt.Errorf("line %q names no object or producer of the test", line)
		}
		return out, nil
	}
	switch f[0] {
	case "ack":
		n, err := nums(3)
		if err != nil {
			return err
		}
		o, p, v := n[0], n[1], n[2]
		if want := r.lastAck[o][p] + 1; v != want {
			return fmt.Errorf("object %d producer %d acked %d, want %d (one more than its previous ack or its recovered value)", o, p, v, want)
		}
		r.lastAck[o][p] = v
		r.seen[o][p] = max(r.seen[o][p], v)
		r.acks++
	case "read":
		n, err := nums(1 + crashProducers)
		if err != nil {
			return err
		}
		o := n[0]
		for p, v := range n[1:] {
			r.seen[o][p] = max(r.seen[o][p], v)
		}
		r.reads++
	case "fail":
		if _, err := nums(2); err != nil {
			return err
		}
		r.fails++
	case "visit":
		n, err := nums(2)
		if err != nil {
			return err
		}
		r.visited[n[0]] = max(r.visited[n[0]], n[1])
		r.visits++
	case "bad":
		return fmt.Errorf("the child saw a violation: %s", line)
	}
	return nil
}

// checkCrashDir opens the store in this process (recovering every WAL) and
// checks each object: its integrity, and for each producer that the SQL
// counter, the KV value and the log agree (the log holds exactly 1..value),
// that no value of a failed turn is anywhere, that the value is at least the
// highest one acked or read, and that it never went back. It returns the
// recovered values. The store is closed before it returns.
func checkCrashDir(t *testing.T, dir string, cycle int, r crashRun, before *crashValues) crashValues {
	t.Helper()
	var got crashValues
	st, err := Open(crashVariantOf(dir, cycle).cfg)
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Errorf("cycle %d: close: %v", cycle, err)
		}
	}()
	for i := 0; i < crashObjects; i++ {
		o, err := st.Acquire(crashNS, crashObjectID(i))
		if err != nil {
			t.Fatal(err)
		}
		var problems []string
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		_, err = turn(t, o, func() error {
			for _, pragma := range []string{"PRAGMA quick_check", "PRAGMA integrity_check"} {
				rows, err := o.Exec(pragma).Raw()
				if err != nil {
					return fmt.Errorf("%s: %w", pragma, err)
				}
				if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] != "ok" {
					bad("%s: %v", pragma, rows)
				}
			}
			rows, err := o.Exec("SELECT producer, value FROM counters ORDER BY producer").Raw()
			if err != nil {
				return err
			}
			if len(rows) != crashProducers {
				bad("counters has %d rows, want %d: %v", len(rows), crashProducers, rows)
			}
			for _, row := range rows {
				p, ok := row[0].(int64)
				if !ok || p < 0 || p >= crashProducers {
					bad("unexpected counters row %v", row)
					continue
				}
				v, ok := row[1].(int64)
				if !ok {
					bad("counters row %v: value is not an integer", row)
					continue
				}
				got[i][p] = v
			}
			entries, err := o.List(ListOptions{})
			if err != nil {
				return err
			}
			kv := make(map[string]int64)
			for _, e := range entries {
				var v int64
				if err := codec.Unmarshal(e.Value, &v); err != nil {
					bad("KV %s: %v", e.Key, err)
					continue
				}
				kv[e.Key] = v
			}
			if len(kv) != crashProducers {
				bad("KV holds %d keys, want %d: %v", len(kv), crashProducers, kv)
			}
			for p := 0; p < crashProducers; p++ {
				v := got[i][p]
				if k, ok := kv[crashKey(p)]; !ok || k != v {
					bad("producer %d: counter %d, KV %d (present %v)", p, v, k, ok)
				}
				var n, distinct, lo, hi int64
				err := o.Exec("SELECT count(*), count(DISTINCT value), coalesce(min(value), 0), coalesce(max(value), 0) FROM log WHERE producer = ?", p).
					Scan(&n, &distinct, &lo, &hi)
				if err != nil {
					return err
				}
				if hi != v || n != v || distinct != v || (v > 0 && lo != 1) {
					bad("producer %d: counter %d, but the log holds %d rows (%d distinct) from %d to %d, want exactly 1..%d", p, v, n, distinct, lo, hi, v)
				}
				if v < r.seen[i][p] {
					bad("producer %d: recovered %d, but %d was acked or read (and released) before the kill: acknowledged turns lost", p, v, r.seen[i][p])
				}
				if v < before[i][p] {
					bad("producer %d: recovered %d, but the previous cycle recovered %d", p, v, before[i][p])
				}
			}
			var stray int64
			if err := o.Exec("SELECT count(*) FROM log WHERE value <= 0 OR producer NOT BETWEEN 0 AND ?", crashProducers-1).Scan(&stray); err != nil {
				return err
			}
			if stray != 0 {
				bad("the log holds %d rows of failed turns or unknown producers", stray)
			}
			return nil
		})
		o.Release()
		if err != nil {
			t.Errorf("cycle %d: %s: check turn: %v", cycle, crashObjectID(i), err)
		}
		for _, s := range problems {
			t.Errorf("cycle %d: %s: %s", cycle, crashObjectID(i), s)
		}
	}
	for v, acked := range r.visited {
		if acked == 0 {
			continue
		}
		o, err := st.Acquire(crashNS, crashVisitorID(v))
		if err != nil {
			t.Fatal(err)
		}
		_, err = turn(t, o, func() error {
			rows, err := o.Exec("PRAGMA integrity_check").Raw()
			if err != nil {
				return err
			}
			if len(rows) != 1 || len(rows[0]) != 1 || rows[0][0] != "ok" {
				t.Errorf("cycle %d: %s: integrity_check: %v", cycle, crashVisitorID(v), rows)
			}
			var n int64
			if ok, err := o.Get("n", &n); err != nil || !ok || n < acked {
				t.Errorf("cycle %d: %s: n = %d (present %v, %v), but %d was acked", cycle, crashVisitorID(v), n, ok, err, acked)
			}
			return nil
		})
		o.Release()
		if err != nil {
			t.Errorf("cycle %d: %s: check turn: %v", cycle, crashVisitorID(v), err)
		}
	}
	return got
}
