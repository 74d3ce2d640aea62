package ws

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gobwas/ws"

	"github.com/durable-go/durable/internal/route"
)

// Regression tests for faults a review found: each failed before its fix.

// The close timer firing while a reader waits mid-frame must release the
// pooled reader once: a double release hands one buffer to two sockets,
// and one client's messages are delivered as another's.
func TestCloseDuringPartialFrameKeepsSocketsApart(t *testing.T) {
	f := newFixture(t, Config{CloseTimeout: time.Millisecond})
	for range 50 {
		cl, c := f.dial(t, "/slow")
		gws.WriteHeader(cl.Conn, gws.Header{Fin: true, OpCode: gws.OpBinary, Masked: true, Length: 100})
		waitFor(t, c.isReading)
		c.Close(nil, 1000, "")
		waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.tcpClosed && !c.reading })
		cl.Conn.Close()
	}
	const clients, msgs = 8, 300
	owner := map[*Conn]string{}
	var wg sync.WaitGroup
	for i := range clients {
		cl, c := f.dial(t, "/busy")
		name := fmt.Sprintf("c%d", i)
		owner[c] = name
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range msgs {
				cl.SendText(fmt.Sprintf("%s-%d", name, j))
			}
		}()
	}
	defer wg.Wait()
	for range clients * msgs {
		e := f.sink.next(t)
		if e.kind != "message" {
			t.Fatalf("event %s %v, want only messages", e.kind, e.err)
		}
		if !strings.HasPrefix(e.data, owner[e.c]+"-") {
			t.Fatalf("socket %s received %q", owner[e.c], e.data)
		}
	}
}

// closeTCP racing a reader that exits: the buffer goes back to the pool
// exactly once.
func TestCloseTCPReleasesReaderOnce(t *testing.T) {
	f := newFixture(t, Config{})
	cl, c := f.dial(t, "/a")
	gws.WriteHeader(cl.Conn, gws.Header{Fin: true, OpCode: gws.OpText, Masked: true, Length: 100})
	cl.Conn.Write([]byte("abc"))
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.reading && c.rd != nil })
	c.mu.Lock()
	rd := c.rd
	c.mu.Unlock()

	// Holding hub.mu stops closeTCP after it closed the connection, which
	// wakes the reader: the reader exits before closeTCP goes on.
	f.hub.mu.Lock()
	done := make(chan struct{})
	go func() { c.closeTCP(); close(done) }()
	waitFor(t, func() bool { return !c.isReading() })
	f.hub.mu.Unlock()
	<-done

	seen := map[*reader]int{}
	for range 4 {
		seen[readers.Get().(*reader)]++
	}
	if seen[rd] > 1 {
		t.Fatalf("the pool handed out one reader %d times: it was released twice", seen[rd])
	}
}

// FrameTimeout bounds one frame, not a stream: a client sending steadily,
// its writes straddling frame boundaries, is never dropped.
func TestFrameTimeoutIsPerFrame(t *testing.T) {
	f := newFixture(t, Config{FrameTimeout: 300 * time.Millisecond})
	cl, _ := f.dial(t, "/a")
	var stream bytes.Buffer
	for range 200 {
		gws.WriteFrame(&stream, gws.MaskFrame(gws.NewBinaryFrame(make([]byte, 2000))))
	}
	b := stream.Bytes()
	go func() {
		// 1,000 bytes every 5 ms: one frame every ~10 ms, 2 s in all.
		for len(b) > 0 {
			n := min(1000, len(b))
			if _, err := cl.Conn.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for i := range 200 {
		if e := f.sink.next(t); e.kind != "message" {
			t.Fatalf("after %d messages of a steady stream: %s %v", i, e.kind, e.err)
		}
	}
}

// Pongs are output like any other: a client that pings and never reads
// is closed once its queue passes MaxQueued, never grows it past that.
func TestPingFloodBoundedByMaxQueued(t *testing.T) {
	const maxQueued = 64 << 10
	f := newFixture(t, Config{MaxQueued: maxQueued})
	cl, c := f.dial(t, "/a")
	var buf bytes.Buffer
	for range 2000 {
		gws.WriteFrame(&buf, gws.MaskFrame(gws.NewPingFrame(bytes.Repeat([]byte("p"), 125))))
	}
	go func() {
		for range 100 {
			if _, err := cl.Conn.Write(buf.Bytes()); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.Open() {
		c.mu.Lock()
		q := c.queued
		c.mu.Unlock()
		if q > maxQueued {
			t.Fatalf("%d bytes queued for a client that never reads (MaxQueued %d)", q, maxQueued)
		}
		if time.Now().After(deadline) {
			t.Fatal("the socket of a client that pings and never reads is still open after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A frame header alone does not make the server allocate the length it
// declares: memory grows with the bytes that arrive.
func TestDeclaredLengthNotAllocatedUpFront(t *testing.T) {
	f := newFixture(t, Config{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 16
	for range n {
		cl, c := f.dial(t, "/a")
		gws.WriteHeader(cl.Conn, gws.Header{Fin: true, OpCode: gws.OpBinary, Masked: true, Length: 32 << 20})
		waitFor(t, c.isReading)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Fatalf("%d headers declaring 32 MiB each grew the heap by %d MiB", n, grew>>20)
	}
}

// A failed accept (Discard) on a live object keeps the object's group and
// with it the auto-response the instance set.
func TestDiscardKeepsLiveObjectsAutoResponse(t *testing.T) {
	f := newFixture(t, Config{Live: func(route.ObjectID) bool { return true }})
	g := f.hub.Group(key("room"))
	if err := g.SetAutoResponse("ping", "pong"); err != nil {
		t.Fatal(err)
	}
	c, err := g.Accept(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Discard()
	if f.hub.Group(key("room")).AutoResponse() == nil {
		t.Fatal("the live object's auto-response is gone after a failed accept")
	}
}
