package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// messageTimeout bounds the wait for one broadcast to reach every socket.
const messageTimeout = 10 * time.Second

// runBroadcast is the bcast subcommand: one of n broadcast sockets sends a
// message, the client waits until all n (the sender included) received it,
// then sends the next.
func runBroadcast(args []string) int {
	lf := newLoadFlags("bcast")
	n := lf.fs.Int("n", 1000, "sockets")
	msgs := lf.fs.Int("m", 300, "messages to broadcast at most")
	dur := lf.fs.Duration("d", 15*time.Second, "stop sending after this long")
	room := lf.fs.String("room", "bcast", "room name; use a new one per run")
	size := lf.fs.Int("size", 32, "message size in bytes")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *n < 1 || *msgs < 1 || *dur <= 0 || *size < 16 || *size > maxMessage {
		return flagExit(errors.New("bcast: -n and -m must be ≥ 1, -d positive, -size at least 16"))
	}
	c := bcastConfig{base: lf.base, room: *room, n: *n, msgs: *msgs, dur: *dur, size: *size}
	return runLoad(lf, dialBudget(*n)+*dur+messageTimeout+15*time.Second, func(ctx context.Context, m *metrics) {
		broadcast(ctx, m, c)
	})
}

type bcastConfig struct {
	base, room string
	n, msgs    int
	dur        time.Duration
	size       int
}

// fanIn counts, over all receiving sockets, the deliveries of the message
// being waited for and signals when every socket has it.
type fanIn struct {
	want int64
	cur  atomic.Int64 // sequence number being waited for
	got  atomic.Int64 // sockets that received cur
	all  chan struct{}
}

func (f *fanIn) expect(seq int) {
	f.got.Store(0)
	f.cur.Store(int64(seq))
}

// received notes that one socket got message msg.
func (f *fanIn) received(msg []byte) {
	seqText, _, _ := bytes.Cut(msg, []byte(" "))
	seq, err := strconv.ParseInt(string(seqText), 10, 64)
	if err != nil || seq != f.cur.Load() {
		return
	}
	if f.got.Add(1) == f.want {
		select {
		case f.all <- struct{}{}:
		default: // a signal is already pending
		}
	}
}

func broadcast(ctx context.Context, m *metrics, c bcastConfig) {
	dialCtx, cancel := context.WithTimeout(ctx, dialBudget(c.n))
	conns := dialAll(dialCtx, m, wsURL(c.base, c.room, "broadcast"), c.n)
	cancel()
	m.set("sockets", float64(len(conns)))
	if len(conns) == 0 {
		return
	}
	if count, err := roomCount(ctx, c.base, c.room, len(conns)); err != nil {
		m.fail(fmt.Errorf("room count: %w", err))
	} else {
		m.set("count", float64(count))
	}
	setDeadlines(ctx, conns)

	fan := &fanIn{want: int64(len(conns)), all: make(chan struct{}, 1)}
	fan.expect(-1)
	var stopping atomic.Bool
	var readers sync.WaitGroup
	for i, conn := range conns {
		readers.Go(func() {
			for {
				msg, err := conn.readMessage()
				if err != nil {
					if !stopping.Load() {
						m.fail(fmt.Errorf("socket %d: read: %w", i, err))
					}
					return
				}
				fan.received(msg)
			}
		})
	}
	defer func() {
		stopping.Store(true)
		closeAll(conns)
		readers.Wait()
	}()

	cpu0 := cpuSeconds()
	start := time.Now()
	stop := start.Add(c.dur)
	sender := conns[0]
	var samples []time.Duration
	for seq := 0; seq < c.msgs && time.Now().Before(stop); seq++ {
		fan.expect(seq)
		t0 := time.Now()
		if err := sender.send(ws.OpText, payload(0, seq, c.size)); err != nil {
			m.fail(fmt.Errorf("send message %d: %w", seq, err))
			break
		}
		if !waitAll(ctx, fan, seq, m) {
			break
		}
		samples = append(samples, time.Since(t0))
	}
	elapsed := time.Since(start)

	delivered := len(samples) * len(conns)
	m.set("messages", float64(len(samples)))
	m.set("deliveries", float64(delivered))
	m.set("deliveries_per_s", round2(float64(delivered)/elapsed.Seconds()))
	m.set("elapsed_s", round2(elapsed.Seconds()))
	m.set("client_cpu_s", round2(cpuSeconds()-cpu0))
	setLatencies(m, samples)
}

// waitAll waits until every socket got message seq; a timeout is an error.
func waitAll(ctx context.Context, fan *fanIn, seq int, m *metrics) bool {
	t := time.NewTimer(messageTimeout)
	defer t.Stop()
	select {
	case <-fan.all:
		return true
	case <-t.C:
		m.fail(fmt.Errorf("message %d reached %d of %d sockets in %v", seq, fan.got.Load(), fan.want, messageTimeout))
	case <-ctx.Done():
		m.fail(fmt.Errorf("message %d reached %d of %d sockets by the deadline", seq, fan.got.Load(), fan.want))
	}
	return false
}
