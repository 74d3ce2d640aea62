package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	cyclesFlag = flag.Int("e2e.cycles", 0, "kill tests: kill cycles (0: -long, $"+cyclesEnv+", else 5)")
	longFlag   = flag.Bool("long", false, "kill tests: 200 kill cycles")
)

const (
	cyclesEnv     = "DURABLE_E2E_CYCLES"
	defaultCycles = 5
	longCycles    = 200

	killCounters = 8  // counter names
	killWorkers  = 16 // concurrent clients, two per name

	// The kill comes at a random moment this far into the load (and not
	// before the first acknowledged increment of the cycle).
	killMin = 100 * time.Millisecond
	killMax = 600 * time.Millisecond

	// Liveness only: the server acknowledges nothing for this long.
	firstAckTimeout = 20 * time.Second
	// Liveness only: the clients return this long after the kill at most.
	drainTimeout = 2 * requestTimeout
)

func killCycles(t *testing.T) int {
	if *cyclesFlag > 0 {
		return *cyclesFlag
	}
	if *longFlag {
		return longCycles
	}
	if s := os.Getenv(cyclesEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number of cycles", cyclesEnv, s)
		}
		return n
	}
	return defaultCycles
}

func killName(i int) string { return fmt.Sprintf("kill-%d", i) }

// killLedger is what the clients know across cycles, per counter.
type killLedger struct {
	sent      [killCounters]int64          // increment requests sent, all cycles
	acked     [killCounters]map[int64]bool // every acknowledged value, all cycles
	recovered [killCounters]int64          // value read after the last restart
}

func newKillLedger() *killLedger {
	l := &killLedger{}
	for i := range l.acked {
		l.acked[i] = map[int64]bool{}
	}
	return l
}

// cycleLoad is one cycle's load.
type cycleLoad struct {
	sent      [killCounters]atomic.Int64
	ackCount  atomic.Int64
	firstAck  chan struct{}
	firstOnce sync.Once
	killed    atomic.Bool // set just before SIGKILL
	stop      atomic.Bool // no new requests

	mu       sync.Mutex
	acks     [killCounters][]int64
	problems []string
}

func (l *cycleLoad) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 20 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// TestServe_KillUnderLoad drives concurrent increments over loopback, kills
// the server with SIGKILL at a random moment, restarts it on the same data
// directory and checks every counter: its stored value is at least the
// highest value ever acknowledged for it (no acknowledged increment lost),
// at most the number of increments ever sent for it (each adds exactly 1),
// and no value was acknowledged twice. The directory carries over from
// cycle to cycle, so the checks are against cumulative counts.
func TestServe_KillUnderLoad(t *testing.T) {
	cycles := killCycles(t)
	dir := t.TempDir()
	ledger := newKillLedger()
	start := time.Now()
	var totalAcks, totalSent int64
	s := startServer(t, dir)
	for cycle := range cycles {
		load, killAfter := runKillCycle(s)
		s = startServer(t, dir)
		problems, acks, sent := checkKillCycle(s, ledger, load)
		for _, p := range problems {
			t.Errorf("cycle %d: %s", cycle, p)
		}
		totalAcks += acks
		totalSent += sent
		var stored int64
		for _, v := range ledger.recovered {
			stored += v
		}
		t.Logf("cycle %d: killed %v into the load; %d acked increments checked of %d sent; %d stored in all",
			cycle, killAfter.Round(time.Millisecond), acks, sent, stored)
		if t.Failed() {
			return
		}
	}
	// A graceful stop and restart changes nothing.
	s.stop()
	s = startServer(t, dir)
	for i := range killCounters {
		if v := s.get(killName(i)); v != ledger.recovered[i] {
			t.Errorf("after SIGTERM and a restart: %s = %d; want %d as before", killName(i), v, ledger.recovered[i])
		}
	}
	s.stop()
	t.Logf("%d cycles in %v: %d acked increments checked of %d sent",
		cycles, time.Since(start).Round(time.Millisecond), totalAcks, totalSent)
}

// runKillCycle loads s with increments and kills it with SIGKILL at a
// random moment, then waits for the clients to return.
func runKillCycle(s *server) (*cycleLoad, time.Duration) {
	s.t.Helper()
	load := &cycleLoad{firstAck: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	loadStart := time.Now()
	for w := range killWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadWorker(ctx, s, load, w%killCounters)
		}()
	}
	delay := killMin + rand.N(killMax-killMin)
	liveness := time.NewTimer(firstAckTimeout)
	defer liveness.Stop()
	time.Sleep(delay)
	select {
	case <-load.firstAck:
	case <-liveness.C:
		load.problem("no increment acknowledged within %v of the start of the load", firstAckTimeout)
	}
	killAfter := time.Since(loadStart)
	load.stop.Store(true)
	load.killed.Store(true)
	s.kill()

	if !drainClients(&wg, cancel) {
		load.problem("clients still waiting %v after the kill", drainTimeout)
	}
	return load, killAfter
}

// drainClients waits for the clients to return after a kill; after
// drainTimeout it cancels their requests (they return at once) and reports
// false.
func drainClients(wg *sync.WaitGroup, cancel context.CancelFunc) bool {
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
		return true
	case <-time.After(drainTimeout):
		cancel()
		<-drained
		return false
	}
}

// loadWorker sends increments for one counter until told to stop. A value
// counts as acknowledged only from a complete 200 response.
func loadWorker(ctx context.Context, s *server, load *cycleLoad, n int) {
	url := s.base + "/counter/" + killName(n) + "/increment"
	var acks []int64
	defer func() {
		load.mu.Lock()
		load.acks[n] = append(load.acks[n], acks...)
		load.mu.Unlock()
	}()
	for !load.stop.Load() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			load.problem("%v", err)
			return
		}
		load.sent[n].Add(1) // counted before it can reach the server
		resp, err := s.client.Do(req)
		if err != nil {
			// Expected once the server is killed; before that, a failure.
			if !load.killed.Load() {
				load.problem("POST %s before the kill: %v", url, err)
			}
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
		resp.Body.Close()
		if err != nil {
			if !load.killed.Load() {
				load.problem("POST %s before the kill: reading the body: %v", url, err)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			// A complete response the server chose to send: never expected
			// under plain load (no SIGTERM, two clients per object).
			load.problem("POST %s: %d %s; want 200", url, resp.StatusCode, body)
			continue
		}
		v, err := counterValue(body)
		if err != nil {
			load.problem("POST %s: 200 but %v", url, err)
			continue
		}
		acks = append(acks, v)
		load.ackCount.Add(1)
		load.firstOnce.Do(func() { close(load.firstAck) })
	}
}

// checkKillCycle reads every counter from the restarted server s and checks
// it against the ledger, which it then updates. It returns what is wrong,
// the number of acknowledged increments checked and of increments sent in
// this cycle.
func checkKillCycle(s *server, ledger *killLedger, load *cycleLoad) (problems []string, acks, sent int64) {
	s.t.Helper()
	problems = slices.Clone(load.problems)
	for i := range killCounters {
		name := killName(i)
		ledger.sent[i] += load.sent[i].Load()
		sent += load.sent[i].Load()
		prev := ledger.recovered[i]
		stored := s.get(name)

		cycleAcks := slices.Clone(load.acks[i])
		slices.Sort(cycleAcks)
		acks += int64(len(cycleAcks))
		var dups []int64
		for j, a := range cycleAcks {
			if ledger.acked[i][a] || j > 0 && cycleAcks[j-1] == a {
				dups = append(dups, a)
			}
			ledger.acked[i][a] = true
		}
		if len(dups) > 0 {
			problems = append(problems, fmt.Sprintf("%s: values acknowledged more than once: %v", name, head(dups, 20)))
		}
		if len(cycleAcks) > 0 {
			if lo := cycleAcks[0]; lo <= prev {
				problems = append(problems, fmt.Sprintf("%s: acknowledged %d, but the server started this cycle at %d (each increment adds 1)", name, lo, prev))
			}
		}
		maxAck := prev // a value read after a restart was durable
		if n := len(cycleAcks); n > 0 && cycleAcks[n-1] > maxAck {
			maxAck = cycleAcks[n-1]
		}
		if stored < maxAck {
			var lost []int64
			for _, a := range cycleAcks {
				if a > stored {
					lost = append(lost, a)
				}
			}
			problems = append(problems, fmt.Sprintf("%s = %d after the restart, but %d was acknowledged (before this cycle: %d): %d acknowledged increments lost: %v",
				name, stored, maxAck, prev, len(lost), head(lost, 20)))
		}
		if stored > ledger.sent[i] {
			problems = append(problems, fmt.Sprintf("%s = %d after the restart, but only %d increments were ever sent for it",
				name, stored, ledger.sent[i]))
		}
		ledger.recovered[i] = stored
	}
	return problems, acks, sent
}

func head(v []int64, n int) string {
	if len(v) <= n {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(fmt.Sprint(v[:n]), "]") + " …]"
}

// TestCheckKillCycle_NegativeControl shows that the kill test's check sees
// each kind of fault: a lost acknowledged increment, a value acknowledged
// twice, more stored than sent, and an ack below the cycle's start. The
// "restarted server" is a stub that answers GET /counter/{name} with set
// values.
func TestCheckKillCycle_NegativeControl(t *testing.T) {
	stored := map[string]int64{}
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/counter/")
		fmt.Fprintf(w, `{"value": %d}`, stored[name])
	}))
	defer stub.Close()
	s := &server{t: t, base: stub.URL, client: newClient()}
	defer s.client.CloseIdleConnections()

	ledger := newKillLedger()
	load := &cycleLoad{}
	// Counter 0: fine, acks 1..5 of 7 sent, 6 stored.
	load.sent[0].Store(7)
	load.acks[0] = []int64{3, 1, 2, 5, 4}
	stored[killName(0)] = 6
	// Counter 1: acks up to 5, only 4 stored: 5 was lost.
	load.sent[1].Store(5)
	load.acks[1] = []int64{1, 2, 3, 4, 5}
	stored[killName(1)] = 4
	// Counter 2: 3 acknowledged twice.
	load.sent[2].Store(4)
	load.acks[2] = []int64{1, 2, 3, 3}
	stored[killName(2)] = 4
	// Counter 3: 9 stored, 8 sent.
	load.sent[3].Store(8)
	stored[killName(3)] = 9
	problems, acks, sent := checkKillCycle(s, ledger, load)
	if acks != 14 || sent != 24 {
		t.Errorf("checked %d acks of %d sent; want 14 of 24", acks, sent)
	}
	want := []string{
		"kill-1 = 4 after the restart, but 5 was acknowledged",
		"kill-2: values acknowledged more than once: [3]",
		"kill-3 = 9 after the restart, but only 8 increments were ever sent",
	}
	checkProblems(t, "cycle 0", problems, want)

	// Next cycle: counter 0 restarted at 6, so an ack of 5 repeats a value
	// acked in cycle 0 and lies below the cycle's start; counter 3's sent
	// count carries over (8 + 1 = 9 stored is fine now); counter 1 stays at
	// the 4 read after the last restart (its lost ack was reported once).
	load = &cycleLoad{}
	load.sent[0].Store(2)
	load.acks[0] = []int64{5, 7}
	stored[killName(0)] = 7
	load.sent[3].Store(1)
	problems, _, _ = checkKillCycle(s, ledger, load)
	checkProblems(t, "cycle 1", problems, []string{
		"kill-0: values acknowledged more than once: [5]",
		"kill-0: acknowledged 5, but the server started this cycle at 6",
	})

	// No fault: nothing reported.
	load = &cycleLoad{}
	load.sent[0].Store(3)
	load.acks[0] = []int64{8, 9}
	stored[killName(0)] = 10
	problems, _, _ = checkKillCycle(s, ledger, load)
	checkProblems(t, "cycle 2", problems, nil)
}

func checkProblems(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d problems found, want %d:\n%s", what, len(got), len(want), strings.Join(got, "\n"))
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("%s: problem %d = %q; want it to start with %q", what, i, got[i], want[i])
		}
	}
}
