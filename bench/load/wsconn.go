package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

const (
	// dialParallel bounds how many WebSocket handshakes are in flight.
	dialParallel = 50
	// dialAttempts is how many times one socket is dialed before it counts
	// as an error.
	dialAttempts = 3
	// dialTimeout bounds one handshake.
	dialTimeout = 10 * time.Second
	// maxMessage bounds the size of a message the client accepts.
	maxMessage = 1 << 20
)

// wsConn is one client WebSocket. It has no goroutine and no read buffer
// until it is first read from, so thousands of idle ones stay cheap.
type wsConn struct {
	conn net.Conn
	src  io.Reader     // conn, preceded by any bytes the handshake read ahead
	br   *bufio.Reader // reads src; nil until the first readMessage
	mu   sync.Mutex    // serializes whole frames written to conn
}

// wsURL returns the WebSocket URL of room's socket route in the given mode.
func wsURL(base, room, mode string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/room/" + room + "/ws?mode=" + mode
}

// dialWS opens one client WebSocket.
func dialWS(ctx context.Context, url string) (*wsConn, error) {
	d := ws.Dialer{Timeout: dialTimeout}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn, src: conn}
	if br != nil {
		// The server sent frames right behind its handshake response.
		ahead := make([]byte, br.Buffered())
		_, _ = io.ReadFull(br, ahead) // reads only buffered bytes: cannot fail
		ws.PutReader(br)
		c.src = io.MultiReader(bytes.NewReader(ahead), conn)
	}
	return c, nil
}

// send writes one masked, unfragmented frame.
func (c *wsConn) send(op ws.OpCode, payload []byte) error {
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewFrame(op, true, payload)))
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err = c.conn.Write(frame)
	return err
}

// readMessage returns the next text or binary message, answering pings on
// the way. A close frame from the server is an error.
func (c *wsConn) readMessage() ([]byte, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.src, 1024)
	}
	var msg []byte
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		if h.Length > maxMessage || int64(len(msg))+h.Length > maxMessage {
			return nil, fmt.Errorf("websocket message over %d bytes", maxMessage)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(payload, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.send(ws.OpPong, payload); err != nil {
				return nil, err
			}
		case ws.OpPong:
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			_ = c.send(ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return nil, fmt.Errorf("websocket closed by server: %d %q", code, reason)
		default: // text, binary or continuation
			msg = append(msg, payload...)
			if h.Fin {
				return msg, nil
			}
		}
	}
}

// close says goodbye with a close frame, if the socket takes it at once,
// and closes the connection.
func (c *wsConn) close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.conn.Close()
}

func closeAll(conns []*wsConn) {
	for _, c := range conns {
		c.close()
	}
}

// setDeadlines bounds every read and write of conns by the deadline of ctx.
func setDeadlines(ctx context.Context, conns []*wsConn) {
	dl, ok := ctx.Deadline()
	if !ok {
		return
	}
	for _, c := range conns {
		_ = c.conn.SetDeadline(dl)
	}
}

// dialAll opens n sockets to url, dialParallel at a time, retrying each
// failed dial, and returns those that connected. Metrics: dial_s,
// dial_retries; every socket that could not be opened is an error.
func dialAll(ctx context.Context, m *metrics, url string, n int) []*wsConn {
	out := make([]*wsConn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(dialParallel, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				out[i] = dialRetry(ctx, m, url)
			}
		})
	}
	wg.Wait()
	m.set("dial_s", round2(time.Since(start).Seconds()))
	if left := int64(n) - min(next.Load(), int64(n)); left > 0 {
		logf("dialing ran out of time: %d sockets not dialed", left)
		m.add("errors", float64(left))
	}
	return slices.DeleteFunc(out, func(c *wsConn) bool { return c == nil })
}

func dialRetry(ctx context.Context, m *metrics, url string) *wsConn {
	var err error
	for attempt := range dialAttempts {
		if attempt > 0 {
			m.add("dial_retries", 1)
			if !sleepCtx(ctx, time.Duration(attempt)*100*time.Millisecond) {
				break
			}
		}
		var c *wsConn
		if c, err = dialWS(ctx, url); err == nil {
			return c
		}
	}
	m.fail(fmt.Errorf("dial %s: %w", url, err))
	return nil
}

// dialBudget is the time allowed for opening n sockets.
func dialBudget(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*5*time.Millisecond
}

// roomCount polls GET /room/<room>/count until it reports want sockets or
// a few seconds pass, and returns the last count it read.
func roomCount(ctx context.Context, base, room string, want int) (int, error) {
	cl := newHTTPClient(1)
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	last, lastErr := -1, error(nil)
	for {
		body, err := call(ctx, cl, http.MethodGet, base+"/room/"+room+"/count")
		if err == nil {
			last, err = strconv.Atoi(string(body))
		}
		lastErr = err
		if err == nil && last == want {
			return last, nil
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			if last >= 0 {
				return last, nil
			}
			return last, lastErr
		}
	}
}
