package e2e

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/wstest"
)

// The benchmarks of issue 5 run the built binary and drive it from this
// process over real sockets. Run them one iteration at a time:
//
//	go test ./e2e -run '^$' -bench Serve_ -benchtime 1x -count 5

// rssKiB reads a process's resident set size.
func rssKiB(b *testing.B, pid int) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS line")
	return 0
}

// waitStats polls /_durable/stats until cond holds (60 s at most).
func (s *server) waitStats(what string, cond func(map[string]int64) bool) map[string]int64 {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := s.stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within 60 s; stats %v", what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dialMany opens n sockets to path(i), 16 at a time.
func (s *server) dialMany(n int, path func(i int) string) []*wstest.Client {
	s.t.Helper()
	cls := make([]*wstest.Client, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cls[i] = s.ws(path(i))
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return cls
}

// BenchmarkServe_HibernatedSocketMemory measures the server's memory per
// hibernated WebSocket: 9,000 sockets over 90 chat rooms, opened from
// this process, all rooms evicted (hibernated) while the sockets stay
// open. Reported: resident KiB per socket (the RSS growth over a baseline
// where the rooms exist but hold no socket, divided by the sockets).
func BenchmarkServe_HibernatedSocketMemory(b *testing.B) {
	const rooms, perRoom = 90, 100
	for range b.N {
		s := startServer(b, b.TempDir(), "--hibernate-after", "1s", "--idle-timeout", "1s")
		room := func(i int) string { return fmt.Sprintf("/chat/mem%d", i%rooms) }
		// Baseline: every room created once (its database and table), then
		// evicted.
		for _, cl := range s.dialMany(rooms, room) {
			cl.Close(1000, "")
			cl.ExpectClose(requestTimeout)
			cl.Drop()
		}
		s.waitStats("rooms evicted", func(st map[string]int64) bool { return st["live"] == 0 && st["websockets"] == 0 })
		time.Sleep(2 * time.Second)
		base := rssKiB(b, s.cmd.Process.Pid)

		start := time.Now()
		cls := s.dialMany(rooms*perRoom, room)
		opened := time.Since(start)
		st := s.waitStats("rooms hibernated", func(st map[string]int64) bool {
			return st["live"] == 0 && st["hibernated_websockets"] == rooms*perRoom
		})
		time.Sleep(2 * time.Second)
		rss := rssKiB(b, s.cmd.Process.Pid)
		per := float64(rss-base) / float64(len(cls))
		b.ReportMetric(per*1024, "B/socket")
		b.ReportMetric(float64(len(cls)), "sockets")
		b.Logf("%d sockets in %d rooms opened in %v; RSS %d KiB → %d KiB: %.2f KiB per hibernated socket; stats %v",
			len(cls), rooms, opened.Round(time.Millisecond), base, rss, per, st)
		// Every socket is still open and wakes its room.
		cls[0].SendText("still here")
		if got, err := cls[rooms].ReadTimeout(requestTimeout); err != nil || string(got.Data) != "still here" {
			b.Fatalf("after hibernation a member got %q %v", got.Data, err)
		}
		for _, cl := range cls {
			cl.Drop()
		}
		s.stop()
	}
}

// BenchmarkServe_Broadcast measures deliveries per second in a chat room
// of 1,000 members: one member sends 200 messages of 100 bytes, the 999
// others each read all of them (the readers run in this process, on the
// same machine).
func BenchmarkServe_Broadcast(b *testing.B) {
	const members, msgs = 1000, 200
	for range b.N {
		s := startServer(b, b.TempDir())
		cls := s.dialMany(members, func(int) string { return "/chat/big" })
		payload := strings.Repeat("x", 100)
		var wg sync.WaitGroup
		errs := make(chan error, members)
		for _, cl := range cls[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range msgs {
					if _, err := cl.ReadTimeout(60 * time.Second); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		start := time.Now()
		for range msgs {
			if err := cls[0].SendText(payload); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		elapsed := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		rate := float64((members-1)*msgs) / elapsed.Seconds()
		b.ReportMetric(rate, "deliveries/s")
		b.Logf("%d deliveries in %v: %.0f deliveries/s (%.0f messages/s)", (members-1)*msgs, elapsed.Round(time.Millisecond), rate, msgs/elapsed.Seconds())
		for _, cl := range cls {
			cl.Drop()
		}
		s.stop()
	}
}

// BenchmarkServe_WakeUp measures how long a message takes from one member
// to another in a hibernated room (the room is constructed again to
// deliver it), against the same in a live room: 200 rooms of two members,
// one message per room, one room at a time.
func BenchmarkServe_WakeUp(b *testing.B) {
	const rooms = 200
	for range b.N {
		s := startServer(b, b.TempDir(), "--hibernate-after", "1s")
		cls := s.dialMany(2*rooms, func(i int) string { return fmt.Sprintf("/chat/wake%d", i/2) })
		measure := func() []time.Duration {
			lat := make([]time.Duration, rooms)
			for r := range rooms {
				start := time.Now()
				cls[2*r].SendText("wake")
				if _, err := cls[2*r+1].ReadTimeout(requestTimeout); err != nil {
					b.Fatal(err)
				}
				lat[r] = time.Since(start)
			}
			slices.Sort(lat)
			return lat
		}
		s.waitStats("rooms hibernated", func(st map[string]int64) bool {
			return st["live"] == 0 && st["hibernated_websockets"] == 2*rooms
		})
		woken := measure()
		live := measure() // the rooms are live now
		pct := func(l []time.Duration, p float64) float64 {
			return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(woken, 0.5), "wake-p50-ms")
		b.ReportMetric(pct(woken, 0.99), "wake-p99-ms")
		b.ReportMetric(pct(live, 0.5), "live-p50-ms")
		b.ReportMetric(pct(live, 0.99), "live-p99-ms")
		b.Logf("hibernated room: p50 %.2f ms p99 %.2f ms; live room: p50 %.2f ms p99 %.2f ms",
			pct(woken, 0.5), pct(woken, 0.99), pct(live, 0.5), pct(live, 0.99))
		for _, cl := range cls {
			cl.Drop()
		}
		s.stop()
	}
}
