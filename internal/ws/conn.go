package ws

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	gws "github.com/gobwas/ws"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/route"
)

// Close codes (RFC 6455 §7.4.1).
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005 // never sent: the close frame had no code
	CloseAbnormal        = 1006 // never sent: the connection dropped
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
	CloseInternalError   = 1011
)

const (
	opText   = gws.OpText
	opBinary = gws.OpBinary
)

type connState uint8

const (
	statePending connState = iota // accepted in a turn; handshake not done yet
	stateOpen
	stateClosing // the runtime sent (or queued) a close frame
	stateClosed  // the client's close frame arrived, or the connection is gone
)

// Conn is one WebSocket the runtime holds for an object.
type Conn struct {
	hub   *Hub
	group *Group
	id    uint64
	tags  []string // immutable
	// User is the caller's handle for the socket (set once by Accept).
	User any

	autoTS atomic.Int64 // unix ns of the last auto-response; 0: none

	mu            sync.Mutex
	nc            net.Conn        // guarded by mu; nil while pending
	rc            syscall.RawConn // guarded by mu; for the poller
	state         connState       // guarded by mu
	left          bool            // guarded by mu; out of the group (its final event decided)
	tcpClosed     bool            // guarded by mu
	stopped       bool            // guarded by mu; deliver no more messages (shutdown)
	q             []frame         // guarded by mu; frames not yet written, in send order
	queued        int64           // guarded by mu; bytes in q
	writing       bool            // guarded by mu; a writer owns the queue
	attachment    []byte          // guarded by mu
	reading       bool            // guarded by mu; a reader goroutine is running
	paused        bool            // guarded by mu; too many messages in flight: not read
	inflight      int             // guarded by mu; messages delivered and not done
	inflightBytes int             // guarded by mu; their bytes
	rd            *reader         // guarded by mu while no reader runs; the reader's buffer, kept while it holds unread bytes
	pre           []byte          // guarded by mu; bytes read with the handshake, not parsed yet
	closeTimer    *time.Timer     // guarded by mu
	peerClosed    bool            // guarded by mu; the client's close frame arrived (or the connection drops once the close frame is out)

	// The message being assembled from fragments; owned by the reader
	// (one at a time: reading).
	inFrag bool
	fragOp gws.OpCode
	frag   []byte
}

// frame is one compiled frame waiting for its promise.
type frame struct {
	p       *gate.Promise // nil: no wait
	b       []byte
	close   bool // a close frame: nothing is written after it
	control bool // sent even if p failed (close frames)
}

// ID returns the socket's number, unique within its hub.
func (c *Conn) ID() uint64 { return c.id }

// Key returns the object the socket belongs to.
func (c *Conn) Key() route.ObjectID { return c.group.key }

// Group returns the socket's group.
func (c *Conn) Group() *Group { return c.group }

// Tags returns the socket's tags (do not modify).
func (c *Conn) Tags() []string { return c.tags }

func (c *Conn) hasTag(t string) bool {
	for _, x := range c.tags {
		if x == t {
			return true
		}
	}
	return false
}

// AutoResponseTime returns when the socket last sent the auto-response.
func (c *Conn) AutoResponseTime() (time.Time, bool) {
	ns := c.autoTS.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// SetAttachment keeps b (an encoded value) with the socket.
func (c *Conn) SetAttachment(b []byte) error {
	if len(b) > MaxAttachment {
		return fmt.Errorf("a WebSocket attachment of %d bytes encoded; the limit is %d (16 KiB): %w", len(b), MaxAttachment, errs.ErrLimit)
	}
	c.mu.Lock()
	c.attachment = append([]byte(nil), b...)
	c.mu.Unlock()
	return nil
}

// Attachment returns the socket's attachment (nil: none).
func (c *Conn) Attachment() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attachment
}

// Open reports whether the socket can still send.
func (c *Conn) Open() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == statePending || c.state == stateOpen
}

// Send queues a text or binary message, released once p is ready (nil:
// at once). It fails with ErrClosed once the socket is closing.
func (c *Conn) Send(p *gate.Promise, binary bool, data []byte) error {
	op := opText
	if binary {
		op = opBinary
	}
	b := compile(op, data)
	c.mu.Lock()
	if c.state != statePending && c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.enqueueLocked(frame{p: p, b: b}) {
		c.mu.Unlock()
		return c.tooSlow()
	}
	c.mu.Unlock()
	return nil
}

// tooSlow closes a socket whose client does not read what it is sent.
func (c *Conn) tooSlow() error {
	err := fmt.Errorf("more than %d bytes wait to be written to this WebSocket: the client reads too slowly; it was closed with 1008: %w", c.hub.cfg.MaxQueued, errs.ErrLimit)
	c.closeWith(nil, ClosePolicyViolation, "the client reads too slowly", err)
	return err
}

// Close closes the socket with code and reason, after the frames already
// sent and once p is ready. The object gets no close event for it.
func (c *Conn) Close(p *gate.Promise, code int, reason string) error {
	if err := CheckClose(code, reason); err != nil {
		return err
	}
	return c.closeWith(p, code, reason, nil)
}

// CheckClose validates a close code and reason an object may send.
func CheckClose(code int, reason string) error {
	switch {
	case code == CloseNormal, code == CloseGoingAway, code == CloseProtocolError, code == CloseUnsupportedData,
		code >= CloseInvalidPayload && code <= 1014, code >= 3000 && code <= 4999:
	default:
		return fmt.Errorf("close code %d cannot be sent: use 1000–1003, 1007–1014 or 3000–4999", code)
	}
	if len(reason) > 123 {
		return fmt.Errorf("a close reason of %d bytes; the limit is 123 (a control frame carries 125 bytes)", len(reason))
	}
	if !utf8.ValidString(reason) {
		return errors.New("the close reason is not valid UTF-8")
	}
	return nil
}

// closeWith queues a close frame and takes the socket out of its group.
// With evErr, the object gets an Error event (the runtime closed the
// socket because of it).
func (c *Conn) closeWith(p *gate.Promise, code int, reason string, evErr error) error {
	c.mu.Lock()
	if c.state != statePending && c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	c.state = stateClosing
	c.enqueueLocked(frame{p: p, b: compile(gws.OpClose, gws.NewCloseFrameBody(gws.StatusCode(code), reason)), close: true, control: true})
	c.mu.Unlock()
	if c.leave() && evErr != nil {
		c.hub.cfg.Sink.Error(c, evErr)
	}
	return nil
}

// leave takes the socket out of its group once; it reports whether this
// call did (and so decides the final event).
func (c *Conn) leave() bool {
	c.mu.Lock()
	if c.left {
		c.mu.Unlock()
		return false
	}
	c.left = true
	c.mu.Unlock()
	c.group.remove(c)
	c.hub.open.Add(-1)
	return true
}

// Discard drops a pending socket whose accepting turn failed: no handshake,
// no event.
func (c *Conn) Discard() {
	c.mu.Lock()
	c.state = stateClosed
	c.q, c.queued = nil, 0
	c.mu.Unlock()
	c.leave()
	c.hub.dropIfEmpty(c.group)
}

// Abandon ends a pending socket whose handshake failed: the object gets a
// Closed event (1006), as for a connection that dropped.
func (c *Conn) Abandon(err error) {
	c.mu.Lock()
	c.state = stateClosed
	c.q, c.queued = nil, 0
	c.mu.Unlock()
	if c.leave() {
		c.hub.cfg.Sink.Closed(c, CloseAbnormal, "the WebSocket handshake failed: "+err.Error(), false)
	}
}

// Attach gives the pending socket its connection once the handshake
// response is written; pre holds bytes read past the handshake request.
// Frames queued meanwhile go out now.
func (c *Conn) Attach(nc net.Conn, pre []byte) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		nc.Close()
		err := errors.New("ws: the connection has no file descriptor")
		c.Abandon(err)
		return err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		nc.Close()
		c.Abandon(err)
		return fmt.Errorf("ws: %w", err)
	}
	h := c.hub
	h.mu.Lock()
	if h.shut {
		h.mu.Unlock()
		nc.Close()
		c.Abandon(errors.New("the runtime shut down"))
		return fmt.Errorf("ws: the hub is shut down: %w", errs.ErrClosed)
	}
	h.conns[c.id] = c
	h.mu.Unlock()
	h.tcpOpen.Add(1)
	c.mu.Lock()
	c.nc, c.rc = nc, rc
	if len(pre) > 0 {
		c.pre = append([]byte(nil), pre...)
	}
	if c.state == statePending {
		c.state = stateOpen
	}
	stopped := h.isClosing()
	c.stopped = stopped
	c.kickLocked()
	hasPre := len(c.pre) > 0
	closed := c.state == stateClosed
	c.mu.Unlock()
	if closed {
		c.closeTCP()
		return nil
	}
	if err := h.poll.add(rc, c.id); err != nil {
		c.closeTCP()
		if c.leave() {
			h.cfg.Sink.Error(c, fmt.Errorf("watch the connection: %w", err))
		}
		return err
	}
	if hasPre {
		c.startRead()
	}
	return nil
}

func (h *Hub) isClosing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closing
}

// enqueueLocked appends f and makes sure a writer will write it. A frame
// other than a close frame is refused (false) if it would take the bytes
// waiting beyond MaxQueued.
func (c *Conn) enqueueLocked(f frame) bool {
	if !f.close && c.queued+int64(len(f.b)) > c.hub.cfg.MaxQueued {
		return false
	}
	c.q = append(c.q, f)
	c.queued += int64(len(f.b))
	c.kickLocked()
	return true
}

// kickLocked starts a writer if the queue has frames and none runs.
func (c *Conn) kickLocked() {
	if c.writing || c.nc == nil || c.tcpClosed || len(c.q) == 0 {
		return
	}
	c.writing = true
	c.waitHeadLocked()
}

// waitHeadLocked runs the writer once the head frame's promise is ready.
func (c *Conn) waitHeadLocked() {
	p := c.q[0].p
	if p == nil {
		go c.writeLoop()
		return
	}
	if done, _ := p.Ready(); done {
		go c.writeLoop()
		return
	}
	p.OnDone(func(error) { go c.writeLoop() })
}

// maxBatch bounds the frames written with one system call.
const maxBatch = 64

// writeLoop writes ready frames in order, several per system call, until
// the queue is empty or its head waits for its promise.
func (c *Conn) writeLoop() {
	var bufs net.Buffers
	for {
		c.mu.Lock()
		if c.tcpClosed {
			c.writing = false
			c.q, c.queued = nil, 0
			c.mu.Unlock()
			return
		}
		bufs = bufs[:0]
		var n int64
		sentClose := false
		for len(c.q) > 0 && len(bufs) < maxBatch {
			f := c.q[0]
			if f.p != nil {
				done, err := f.p.Ready()
				if !done {
					break
				}
				if err != nil && !f.control {
					// The turn that sent this frame failed: its output is
					// dropped with its writes.
					c.q[0] = frame{}
					c.q = c.q[1:]
					c.queued -= int64(len(f.b))
					continue
				}
			}
			c.q[0] = frame{}
			c.q = c.q[1:]
			bufs = append(bufs, f.b)
			n += int64(len(f.b))
			if f.close {
				sentClose = true
				c.q, c.queued = nil, 0 // nothing goes after a close frame
				n = 0
				break
			}
		}
		if len(bufs) == 0 {
			if len(c.q) == 0 {
				c.writing = false
			} else {
				c.waitHeadLocked()
			}
			c.mu.Unlock()
			return
		}
		nc := c.nc
		c.mu.Unlock()
		nc.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		_, err := bufs.WriteTo(nc)
		c.mu.Lock()
		c.queued -= n
		c.mu.Unlock()
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			c.closeTCP()
			if c.leave() {
				c.hub.cfg.Sink.Error(c, fmt.Errorf("write to the client: %w", err))
			}
			return
		}
		if sentClose {
			c.closeSent()
		}
	}
}

// closeSent runs once the runtime's close frame is written: the
// connection closes when the client answers, or after CloseTimeout.
func (c *Conn) closeSent() {
	c.mu.Lock()
	done := c.peerClosed
	if !done && c.closeTimer == nil {
		d := c.hub.cfg.CloseTimeout
		if c.stopped && d > shutdownLinger {
			d = shutdownLinger // the server is going down: wait less
		}
		c.closeTimer = time.AfterFunc(d, c.closeTCP)
	}
	c.mu.Unlock()
	if done {
		c.closeTCP()
	}
}

// shutdownLinger bounds the wait for a client's close frame during a
// shutdown.
const shutdownLinger = time.Second

// closeTCP drops the connection (once).
func (c *Conn) closeTCP() {
	c.mu.Lock()
	if c.tcpClosed {
		c.mu.Unlock()
		return
	}
	c.tcpClosed = true
	c.state = stateClosed
	nc, rc := c.nc, c.rc
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	// The buffer goes back to the pool once: here, unless a reader runs
	// (it releases it when it sees the connection closed).
	var rd *reader
	if !c.reading {
		rd, c.rd = c.rd, nil
	}
	c.mu.Unlock()
	h := c.hub
	if nc != nil {
		h.poll.remove(rc)
		nc.Close()
		h.mu.Lock()
		delete(h.conns, c.id)
		h.mu.Unlock()
		h.tcpOpen.Add(-1)
	}
	if rd != nil {
		rd.release()
	}
}

func (c *Conn) isReading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reading
}

// stopReading makes the socket deliver no more messages (shutdown); close
// frames are still read.
func (c *Conn) stopReading() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

// compile builds an unmasked server frame.
func compile(op gws.OpCode, payload []byte) []byte {
	h := gws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	n := gws.HeaderSize(h)
	b := make([]byte, n+len(payload))
	hb := b[:0:n]
	w := sliceWriter{b: hb}
	gws.WriteHeaderBuffer(&w, h, make([]byte, gws.MaxHeaderSize))
	copy(b[n:], payload)
	return b
}

// sliceWriter writes into a preallocated slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
