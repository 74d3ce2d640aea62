package durable_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Ticker is the class of the alarm crash test: its handler counts firings
// and records any that came early.
type Ticker struct{ st *durable.State }

func (k *Ticker) Arm(ctx context.Context, at time.Time) (bool, error) {
	if err := k.st.Storage().Put("at", at.UnixMilli()); err != nil {
		return false, err
	}
	return true, k.st.Storage().SetAlarm(at)
}

func (k *Ticker) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	var at, n int64
	k.st.Storage().Get("at", &at)
	k.st.Storage().Get("fired", &n)
	if time.Now().UnixMilli() < at {
		k.st.Storage().Put("early", true)
	}
	return k.st.Storage().Put("fired", n+1)
}

func (k *Ticker) State(ctx context.Context) ([2]int64, error) {
	var n int64
	var early bool
	k.st.Storage().Get("fired", &n)
	k.st.Storage().Get("early", &early)
	e := int64(0)
	if early {
		e = 1
	}
	return [2]int64{n, e}, nil
}

func newTicker(st *durable.State) (*Ticker, error) { return &Ticker{st: st}, nil }

// TestAlarm_SurviveSIGKILL: a child process sets alarms and reports each one
// only once SetAlarm's turn is acknowledged; it is killed with SIGKILL at a
// random moment, before or after the alarms' times. After a restart, every
// acknowledged alarm fires (at least once, never zero times, never early).
func TestAlarm_SurviveSIGKILL(t *testing.T) {
	if dir := os.Getenv("DURABLE_ALARM_CHILD"); dir != "" {
		alarmChild(dir)
		return
	}
	cycles := 5
	if testing.Short() {
		cycles = 2
	}
	if s := os.Getenv("DURABLE_ALARM_CYCLES"); s != "" {
		cycles, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acked := map[string]bool{}
	for c := 0; c < cycles; c++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAlarm_SurviveSIGKILL$")
		cmd.Env = append(os.Environ(), "DURABLE_ALARM_CHILD="+dir, fmt.Sprintf("DURABLE_ALARM_CYCLE=%d", c))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		killAt := time.Now().Add(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		n := 0
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if name, found := strings.CutPrefix(l, "armed "); found {
					acked[name] = true
					n++
				}
			case <-time.After(time.Until(killAt)):
				break read
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for l := range lines {
			if name, found := strings.CutPrefix(l, "armed "); found {
				acked[name] = true
				n++
			}
		}
		t.Logf("cycle %d: %d alarms acknowledged before the kill", c, n)
	}
	// Restart and wait for every acknowledged alarm.
	rt := durabletest.New(t, durable.Config{Dir: dir})
	ns := durable.Define(rt, "TICK", newTicker)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for name := range acked {
		for {
			st, err := durable.Call0(ctx, ns.GetByName(name), (*Ticker).State)
			if err != nil {
				t.Fatal(err)
			}
			if st[1] != 0 {
				t.Fatalf("%s: its alarm fired before its time", name)
			}
			if st[0] >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: an acknowledged alarm never fired", name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("%d acknowledged alarms all fired", len(acked))
	if len(acked) == 0 {
		t.Fatal("no alarm was acknowledged in any cycle: the test checked nothing")
	}
}

// alarmChild arms alarms 0–300 ms ahead on new objects until killed.
func alarmChild(dir string) {
	rt, err := durable.Open(durable.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ns := durable.Define(rt, "TICK", newTicker)
	cycle := os.Getenv("DURABLE_ALARM_CYCLE")
	ctx := context.Background()
	for i := 0; ; i++ {
		name := fmt.Sprintf("c%s-%d", cycle, i)
		at := time.Now().Add(time.Duration(i%300) * time.Millisecond)
		if _, err := durable.Call(ctx, ns.GetByName(name), (*Ticker).Arm, at); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("armed %s\n", name)
	}
}
