package ws

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	gws "github.com/gobwas/ws"
)

// reader is the buffer a socket borrows while it has bytes to read. It is
// returned to the pool as soon as nothing unread is left in it, so an idle
// socket holds none.
type reader struct {
	br  *bufio.Reader
	src source
	hdr [gws.MaxHeaderSize]byte
}

// source reads the bytes that came with the handshake first, then the
// connection.
type source struct {
	pre []byte
	nc  net.Conn
}

func (s *source) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.nc.Read(p)
}

const readBufferSize = 4096

var readers = sync.Pool{New: func() any {
	r := &reader{}
	r.br = bufio.NewReaderSize(&r.src, readBufferSize)
	return r
}}

func getReader(nc net.Conn, pre []byte) *reader {
	r := readers.Get().(*reader)
	r.src = source{pre: pre, nc: nc}
	r.br.Reset(&r.src)
	return r
}

// empty reports whether the reader holds no unread byte.
func (r *reader) empty() bool { return r.br.Buffered() == 0 && len(r.src.pre) == 0 }

func (r *reader) release() {
	r.src = source{}
	r.br.Reset(&r.src)
	readers.Put(r)
}

// action is what the read loop does after a frame.
type action uint8

const (
	actContinue action = iota // read on while bytes are buffered
	actPause                  // too many messages in flight: stop, keep the buffer
	actStop                   // the socket is done reading
)

// startRead runs a reader for the socket unless one runs or it is paused.
func (c *Conn) startRead() {
	c.mu.Lock()
	if c.reading || c.tcpClosed || c.paused || c.nc == nil {
		c.mu.Unlock()
		return
	}
	c.reading = true
	c.mu.Unlock()
	go c.readLoop()
}

// readLoop reads the frames that arrived, then gives the socket back to
// the poller (or keeps it paused).
func (c *Conn) readLoop() {
	c.mu.Lock()
	rd := c.rd
	if rd == nil {
		rd = getReader(c.nc, c.pre)
		c.pre = nil
		c.rd = rd
	}
	nc, rc := c.nc, c.rc
	c.mu.Unlock()
	act := actContinue
	for act == actContinue {
		if !pollerBlocks {
			// Bytes arrived: the frame they begin must arrive whole in
			// time (one frame at a time, so a steady stream is never cut).
			nc.SetReadDeadline(time.Now().Add(c.hub.cfg.FrameTimeout))
		}
		act = c.readFrame(rd)
		if act == actContinue && rd.empty() {
			break
		}
	}
	c.mu.Lock()
	c.reading = false
	keep := act == actPause && !rd.empty() && !c.tcpClosed
	if !keep {
		c.rd = nil
	}
	closed := c.tcpClosed
	paused := c.paused
	c.mu.Unlock()
	if !keep {
		rd.release()
	}
	if act == actStop || closed {
		return
	}
	if paused {
		// messageDone restarts reading.
		return
	}
	if act == actPause {
		// Unpaused meanwhile.
		c.resumeRead()
		return
	}
	c.hub.poll.rearm(rc, c.id)
}

// resumeRead reads on after a pause: the buffered bytes first, else the
// poller.
func (c *Conn) resumeRead() {
	c.mu.Lock()
	hasRd := c.rd != nil
	rc := c.rc
	closed := c.tcpClosed
	c.mu.Unlock()
	if closed {
		return
	}
	if hasRd {
		c.startRead()
		return
	}
	c.hub.poll.rearm(rc, c.id)
}

// messageDone is called when the object handled a message of n bytes.
func (c *Conn) messageDone(n int) {
	c.mu.Lock()
	c.inflight--
	c.inflightBytes -= n
	resume := c.paused && !c.overInflightLocked()
	if resume {
		c.paused = false
	}
	reading := c.reading
	c.mu.Unlock()
	if resume && !reading {
		c.resumeRead()
	}
}

// readFrame reads and handles one frame.
func (c *Conn) readFrame(rd *reader) action {
	h, err := gws.ReadHeaderBuffer(rd.br, rd.hdr[:])
	if err != nil {
		if errors.Is(err, gws.ErrHeaderLengthMSB) || errors.Is(err, gws.ErrHeaderLengthUnexpected) {
			return c.violation(CloseProtocolError, "a malformed frame header", nil, rd)
		}
		return c.readFailed(err)
	}
	switch {
	case h.Rsv != 0:
		return c.violation(CloseProtocolError, "a frame with reserved bits set (no extension was negotiated)", &h, rd)
	case !h.Masked:
		return c.violation(CloseProtocolError, "an unmasked frame (client frames must be masked)", &h, rd)
	case h.OpCode.IsReserved():
		return c.violation(CloseProtocolError, fmt.Sprintf("a frame with unknown opcode %d", h.OpCode), &h, rd)
	}
	if h.OpCode.IsControl() {
		if !h.Fin || h.Length > 125 {
			return c.violation(CloseProtocolError, "a fragmented control frame or one over 125 bytes", &h, rd)
		}
		var buf [125]byte
		p := buf[:h.Length]
		if _, err := io.ReadFull(rd.br, p); err != nil {
			return c.readFailed(err)
		}
		gws.Cipher(p, h.Mask, 0)
		switch h.OpCode {
		case gws.OpPing:
			if !c.reply(compile(gws.OpPong, p)) {
				return actStop
			}
		case gws.OpClose:
			return c.peerClose(p)
		}
		return actContinue
	}
	switch {
	case h.OpCode == gws.OpContinuation && !c.inFrag:
		return c.violation(CloseProtocolError, "a continuation frame outside a fragmented message", &h, rd)
	case h.OpCode != gws.OpContinuation && c.inFrag:
		return c.violation(CloseProtocolError, "a new message inside a fragmented one", &h, rd)
	}
	if total := int64(len(c.frag)) + h.Length; total > c.hub.cfg.MaxMessage {
		c.frag, c.inFrag = nil, false
		return c.violation(CloseMessageTooBig, fmt.Sprintf("a message of more than %d bytes (MaxWebSocketMessage)", c.hub.cfg.MaxMessage), &h, rd)
	}
	c.mu.Lock()
	discard := c.state != stateOpen || c.stopped
	c.mu.Unlock()
	if discard {
		// Closing (or shutting down): data is no longer delivered.
		if _, err := io.CopyN(io.Discard, rd.br, h.Length); err != nil {
			return c.readFailed(err)
		}
		if h.Fin {
			c.frag, c.inFrag = nil, false
		}
		return actContinue
	}
	var data []byte
	var op gws.OpCode
	if !c.inFrag && h.Fin {
		var err error
		if data, err = readPayload(rd.br, nil, h.Length); err != nil {
			return c.readFailed(err)
		}
		gws.Cipher(data, h.Mask, 0)
		op = h.OpCode
	} else {
		if !c.inFrag {
			c.inFrag, c.fragOp = true, h.OpCode
		}
		start := len(c.frag)
		var err error
		if c.frag, err = readPayload(rd.br, c.frag, h.Length); err != nil {
			return c.readFailed(err)
		}
		gws.Cipher(c.frag[start:], h.Mask, 0)
		if !h.Fin {
			return actContinue
		}
		data, op = c.frag, c.fragOp
		c.frag, c.inFrag = nil, false
	}
	binary := op == gws.OpBinary
	if !binary && !utf8.Valid(data) {
		return c.violation(CloseInvalidPayload, "a text message that is not valid UTF-8", nil, rd)
	}
	return c.deliver(binary, data)
}

// payloadStep bounds how far a payload buffer grows ahead of the bytes
// that arrived: a header alone never makes the server allocate what it
// declares.
const payloadStep = 64 << 10

// readPayload appends n bytes read from r to dst, growing dst as they
// arrive.
func readPayload(r io.Reader, dst []byte, n int64) ([]byte, error) {
	for n > 0 {
		step := min(n, payloadStep)
		if free := int64(cap(dst) - len(dst)); free < step {
			// Double (so reading n bytes costs O(n)), but never beyond
			// what is left to read.
			grow := max(step, min(int64(len(dst)), n))
			dst = slices.Grow(dst, int(grow))
		}
		take := min(n, int64(cap(dst)-len(dst)))
		start := len(dst)
		dst = dst[:start+int(take)]
		if _, err := io.ReadFull(r, dst[start:]); err != nil {
			return dst[:start], err
		}
		n -= take
	}
	return dst, nil
}

// reply queues a frame the runtime answers with (a pong, the
// auto-response) unless the socket is closing; a client that does not read
// its answers is closed with 1008 (false).
func (c *Conn) reply(b []byte) bool {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return true
	}
	ok := c.enqueueLocked(frame{b: b})
	c.mu.Unlock()
	if !ok {
		c.tooSlow()
	}
	return ok
}

// maxInflightBytes bounds the bytes of one socket's messages waiting for
// their object (at least one message of any size is let through).
const maxInflightBytes = 1 << 20

func (c *Conn) overInflightLocked() bool {
	return c.inflight >= c.hub.cfg.MaxInflight || c.inflightBytes >= maxInflightBytes
}

// deliver answers the auto-response or hands the message to the Sink.
func (c *Conn) deliver(binary bool, data []byte) action {
	if !binary {
		if ar := c.group.auto.Load(); ar != nil && string(data) == ar.Request {
			// Stamped before the response leaves: a client that saw it
			// can see the time (a test read it before it was stored).
			c.autoTS.Store(c.hub.cfg.Now().UnixNano())
			if !c.reply(ar.frame) {
				return actStop
			}
			return actContinue
		}
	}
	n := len(data)
	c.mu.Lock()
	c.inflight++
	c.inflightBytes += n
	pause := c.overInflightLocked()
	if pause {
		c.paused = true
	}
	c.mu.Unlock()
	c.hub.cfg.Sink.Message(c, binary, data, func() { c.messageDone(n) })
	if pause {
		return actPause
	}
	return actContinue
}

// peerClose handles the client's close frame: the runtime answers it
// (echoing the code) and the object gets Closed.
func (c *Conn) peerClose(p []byte) action {
	code, reason := CloseNoStatus, ""
	if len(p) == 1 {
		return c.violation(CloseProtocolError, "a close frame with a 1-byte body", nil, nil)
	}
	if len(p) >= 2 {
		sc, r := gws.ParseCloseFrameData(p)
		code, reason = int(sc), r
		if !validPeerCode(code) {
			return c.violation(CloseProtocolError, fmt.Sprintf("close code %d, which is not allowed on the wire", code), nil, nil)
		}
		if !utf8.ValidString(reason) {
			return c.violation(CloseInvalidPayload, "a close reason that is not valid UTF-8", nil, nil)
		}
	}
	c.mu.Lock()
	c.peerClosed = true
	st := c.state
	written := false
	switch st {
	case stateOpen:
		c.state = stateClosed
		body := []byte(nil)
		if code != CloseNoStatus {
			body = gws.NewCloseFrameBody(gws.StatusCode(code), "")
		}
		c.enqueueLocked(frame{b: compile(gws.OpClose, body), close: true, control: true})
	case stateClosing:
		// Our close frame answered: drop the connection once it is out.
		written = c.closeTimer != nil
	}
	c.mu.Unlock()
	if written {
		c.closeTCP()
	}
	if st == stateOpen && c.leave() {
		c.hub.cfg.Sink.Closed(c, code, reason, true)
	}
	return actStop
}

// validPeerCode reports whether a client may send code (RFC 6455 §7.4).
func validPeerCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// violation closes the socket with code because the client broke the
// protocol or a limit; the object gets an Error event. With h (a frame
// whose payload is unread), the payload is skipped when that is cheap, so
// the client's close frame can still be read; otherwise the connection
// drops once the close frame is written.
func (c *Conn) violation(code int, msg string, h *gws.Header, rd *reader) action {
	err := &ProtocolError{Code: code, Msg: msg}
	c.closeWith(nil, code, truncate(msg, 123), err)
	if h == nil && rd != nil && code != CloseInvalidPayload {
		c.dropAfterClose()
		return actStop
	}
	if h != nil && rd != nil {
		if h.Length > 4*c.hub.cfg.MaxMessage+(1<<20) {
			c.dropAfterClose()
			return actStop
		}
		if _, err := io.CopyN(io.Discard, rd.br, h.Length); err != nil {
			c.closeTCP()
			return actStop
		}
	}
	if rd == nil {
		c.dropAfterClose()
		return actStop
	}
	return actContinue
}

// dropAfterClose closes the connection as soon as the close frame is
// written, without waiting for the client's answer.
func (c *Conn) dropAfterClose() {
	c.mu.Lock()
	c.peerClosed = true
	written := c.closeTimer != nil
	c.mu.Unlock()
	if written {
		c.closeTCP()
	}
}

// readFailed ends the socket after a read error: a dropped connection is
// a Closed event (1006), a frame that stalled an Error event.
func (c *Conn) readFailed(err error) action {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	c.closeTCP()
	if st != stateOpen || !c.leave() {
		return actStop
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.hub.cfg.Sink.Error(c, fmt.Errorf("the client sent part of a frame and stalled for %s; the connection was dropped", c.hub.cfg.FrameTimeout))
	} else {
		c.hub.cfg.Sink.Closed(c, CloseAbnormal, "", false)
	}
	return actStop
}

// ProtocolError is the error of a socket the runtime closed because the
// client broke the protocol or a limit.
type ProtocolError struct {
	Code int    // the close code sent
	Msg  string // what the client did
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("WebSocket closed with %d: the client sent %s", e.Code, e.Msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
